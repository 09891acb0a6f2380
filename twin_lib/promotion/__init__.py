"""The promotion gate: reviews of a candidate and the decision to approve, reject or wait.

KFP has no approval step, so the gate is split in two: the training pipeline ends by asking
for reviews (:mod:`reviews`), and a later run collects them and decides (:mod:`decision`)
from the evaluation figures against the base model and the review evidence. Both modules are
pure over pydantic models; :mod:`twin_lib.steps.promotion` reads the evidence, records the
decision in the registry and deploys only an approved version.
"""
