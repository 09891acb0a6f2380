"""Evaluation of a candidate against its base model: pure measurements and the report.

Every figure is computed by the same function for both models, on the same questions, texts
and retrieved passages, so a difference between the two is the fine-tuning's and nothing
else's. Scores that have no natural scale (style) come with a calibrated ceiling and floor.
The step that gathers the inputs and stores the results is :mod:`twin_lib.steps.evaluation`.
"""
