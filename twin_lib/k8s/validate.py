"""Render the kustomize trees and check them with real tools.

- ``kubectl kustomize`` renders each overlay exactly as ``kubectl apply -k`` would;
- kubeconform validates every object strictly against the schemas of ``schemas``;
- every pod an object would create is evaluated at Pod Security "restricted" by the checks
  of ``k8s.io/pod-security-admission`` (the admission plugin's own library, see
  ``tools/podsecurity-check``), including the pods of PyTorchJobs and InferenceServices,
  which the namespace label alone would only catch at run time;
- kube-score reports misconfigurations; a finding may only be silenced in place, with a
  ``kube-score/ignore`` annotation accompanied by a ``llm-twin.io/kube-score-reason``;
- KFP ``Pipeline``/``PipelineVersion`` objects are checked against the pipeline IR protobuf
  (the KFP Go module that holds their CRDs is not served by the module proxy here).

Validation works on a temporary copy of ``manifests/`` whose missing secret env files are
filled from the committed examples, so it never needs (or touches) real secrets.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from twin_lib.k8s import tools
from twin_lib.k8s.schemas import SCHEMA_TEMPLATE, build_schema_dir

logger = logging.getLogger(__name__)

KUBE_SCORE_REASON = "llm-twin.io/kube-score-reason"
KFP_KINDS = ("Pipeline", "PipelineVersion")
KFP_API_VERSION = "pipelines.kubeflow.org/v2beta1"
KUBERNETES_VERSION = tools.KUBERNETES_OPENAPI.version.rsplit(".", 1)[0]
OVERLAYS = ("overlays/dev", "overlays/gpu")
RUNS = ("runs/feature", "runs/feature-refresh", "runs/promote", "runs/promote-now")
# Run Jobs land in the platform namespace: policies that cover them (NetworkPolicies) live
# in the overlay, so kube-score judges a run together with the overlay it is applied to.
RUN_CONTEXT = "overlays/dev"
POD_SECURITY_LEVEL = "restricted"


@dataclass(frozen=True)
class Finding:
    """One problem with one object, phrased so the reader knows where to look."""

    tool: str
    obj: str
    message: str

    def __str__(self) -> str:
        return f"[{self.tool}] {self.obj}: {self.message}"


def prepare_tree(manifests: Path, dest: Path) -> Path:
    """Copy ``manifests`` to ``dest`` with every missing ``*.env`` made from its example."""
    shutil.copytree(manifests, dest)
    for example in dest.rglob("*.env.example"):
        target = example.with_suffix("")
        if not target.exists():
            shutil.copyfile(example, target)
    return dest


def render(kustomization_dir: Path) -> str:
    """Render a kustomization with the kubectl of this environment."""
    result = subprocess.run(
        [tools.kubectl_binary(), "kustomize", str(kustomization_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {kustomization_dir} failed:\n{result.stderr}")
    return result.stdout


def documents(rendered: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def object_id(doc: dict[str, Any]) -> str:
    meta = doc.get("metadata", {})
    return f"{doc.get('kind')}/{meta.get('namespace', '-')}/{meta.get('name')}"


def kubeconform(rendered: str, cache_dir: Path) -> list[Finding]:
    """Strict schema validation; KFP kinds are skipped here and checked by ``kfp_objects``."""
    binary = tools.ensure_tool(tools.KUBECONFORM, cache_dir)
    schema_dir = build_schema_dir(cache_dir)
    result = subprocess.run(
        [
            str(binary),
            "-strict",
            "-output",
            "json",
            "-verbose",
            "-skip",
            ",".join(f"{KFP_API_VERSION}/{kind}" for kind in KFP_KINDS),
            "-schema-location",
            str(schema_dir / SCHEMA_TEMPLATE),
            "-",
        ],
        input=rendered,
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(result.stdout)
    findings = [
        Finding("kubeconform", f"{r['kind']}/{r['name']}", r.get("msg", r["status"]))
        for r in report["resources"]
        if r["status"] in ("statusInvalid", "statusError")
        or (r["status"] == "statusSkipped" and r["kind"] not in KFP_KINDS)
    ]
    expected = sum(1 for doc in documents(rendered) if doc.get("kind") not in KFP_KINDS)
    valid = sum(1 for r in report["resources"] if r["status"] == "statusValid")
    if not findings and valid != expected:
        findings.append(Finding("kubeconform", "-", f"validated {valid} of {expected} objects"))
    return findings


class PodSecurityReport(NamedTuple):
    """The pods evaluated, so an empty findings list cannot hide an empty evaluation."""

    checked: list[str]
    findings: list[Finding]


def pod_security(rendered: str, cache_dir: Path) -> PodSecurityReport:
    """Evaluate every pod template at the level the platform namespace enforces."""
    binary = tools.ensure_local_tool(tools.PODSECURITY_CHECK, cache_dir)
    result = subprocess.run(
        [str(binary), "-json", "-level", POD_SECURITY_LEVEL, "-version", "latest"],
        input=rendered,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode not in (0, 1):
        raise RuntimeError(f"podsecurity-check failed:\n{result.stderr}")
    report = json.loads(result.stdout)
    return PodSecurityReport(
        report["checked"],
        [
            Finding("pod-security", v["object"], f"{v['check']}: {v['detail']}")
            for v in report["violations"]
        ],
    )


def _unexplained_ignores(docs: list[dict[str, Any]]) -> list[Finding]:
    return [
        Finding("kube-score", object_id(doc), "kube-score/ignore without a reason annotation")
        for doc in docs
        if "kube-score/ignore" in (annotations := doc.get("metadata", {}).get("annotations") or {})
        and not annotations.get(KUBE_SCORE_REASON, "").strip()
    ]


def kube_score(rendered: str, cache_dir: Path) -> list[Finding]:
    """Every check below "all OK" that is not skipped is a finding."""
    binary = tools.ensure_tool(tools.KUBE_SCORE, cache_dir)
    result = subprocess.run(
        [
            str(binary),
            "score",
            "--output-format",
            "json",
            "--kubernetes-version",
            KUBERNETES_VERSION,
            "-",
        ],
        input=rendered,
        capture_output=True,
        text=True,
        check=False,
    )
    if not result.stdout.strip():
        raise RuntimeError(f"kube-score produced no report:\n{result.stderr}")
    findings = [
        Finding(
            "kube-score",
            f"{obj['type_meta']['kind']}/{obj['object_name']}",
            f"{check['check']['id']}: "
            + "; ".join(c.get("summary", "") for c in check.get("comments") or []),
        )
        for obj in json.loads(result.stdout)
        for check in obj["checks"]
        if not check["skipped"] and check["grade"] < 10
    ]
    return findings + _unexplained_ignores(documents(rendered))


def kfp_objects(docs: list[dict[str, Any]]) -> list[Finding]:
    """Parse pipeline specs strictly into the KFP IR messages the API server reads them as."""
    findings: list[Finding] = []
    for doc in docs:
        if doc.get("kind") not in KFP_KINDS:
            continue
        if doc.get("apiVersion") != KFP_API_VERSION:
            findings.append(Finding("kfp", object_id(doc), f"apiVersion is not {KFP_API_VERSION}"))
        spec = doc.get("spec", {})
        try:
            if doc["kind"] == "PipelineVersion":
                json_format.ParseDict(spec["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())
                json_format.ParseDict(
                    spec.get("platformSpec", {}), pipeline_spec_pb2.PlatformSpec()
                )
        except (KeyError, json_format.ParseError) as error:
            findings.append(Finding("kfp", object_id(doc), f"invalid pipeline spec: {error}"))
    return findings


def validate_rendered(rendered: str, cache_dir: Path, context: str = "") -> list[Finding]:
    """All checks on one rendered stream; ``context`` holds objects it is applied beside."""
    return (
        kubeconform(rendered, cache_dir)
        + pod_security(rendered, cache_dir).findings
        + kube_score(f"{context}\n---\n{rendered}" if context else rendered, cache_dir)
        + kfp_objects(documents(rendered))
    )


def validate_tree(tree: Path, cache_dir: Path) -> dict[str, list[Finding]]:
    """Findings per kustomization a user applies: both overlays and every run."""
    rendered = {target: render(tree / target) for target in (*OVERLAYS, *RUNS)}
    return {
        target: validate_rendered(text, cache_dir, rendered[RUN_CONTEXT] if target in RUNS else "")
        for target, text in rendered.items()
    }
