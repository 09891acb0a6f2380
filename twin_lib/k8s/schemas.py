"""Strict JSON schemas for kubeconform, built offline from official sources.

kubeconform's default schema location is a web URL; here the schemas are generated from the
Kubernetes OpenAPI document and the projects' CRD YAMLs shipped in their Go modules (see
``tools``). The conversion follows kubeconform's own ``openapi2jsonschema``: objects that list
their properties reject any other property (that is what makes ``-strict`` strict), and
int-or-string / quantity fields accept both forms. CRD schemas get the real ObjectMeta schema
in place of the bare ``metadata: {type: object}`` so typos in metadata are caught too.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from twin_lib.k8s.tools import CRD_SOURCES, KUBERNETES_OPENAPI, GoSource, module_files

logger = logging.getLogger(__name__)

Schema = dict[str, Any]

SCHEMA_TEMPLATE = "{{ .ResourceKind }}{{ .KindSuffix }}.json"
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_STRING_OR_INT = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
_QUANTITY = {"oneOf": [{"type": "string"}, {"type": "number"}]}


def schema_file_name(kind: str, api_version: str) -> str:
    """The file name kubeconform derives for a kind (see ``SCHEMA_TEMPLATE``)."""
    group, _, version = api_version.rpartition("/")
    suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
    return f"{kind.lower()}{suffix.lower()}.json"


def _strict(node: Any) -> Any:
    """Close every object schema that names its properties, recursively."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("format") == "int-or-string":
        return dict(_STRING_OR_INT)
    out = {key: _strict(value) for key, value in node.items()}
    closable = "properties" in out and "additionalProperties" not in out
    if closable and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if out.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref.removeprefix("#/definitions/")
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _closure(root: str, definitions: dict[str, Schema]) -> dict[str, Schema]:
    """The definitions reachable from ``root``: each file stays standalone and small."""
    seen: dict[str, Schema] = {}
    pending = [root]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen[name] = definitions[name]
        pending.extend(ref for ref in _refs(definitions[name]) if ref not in seen)
    return seen


def _kubernetes_definitions(swagger: Schema) -> dict[str, Schema]:
    definitions = {name: _strict(body) for name, body in swagger["definitions"].items()}
    definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"] = dict(_QUANTITY)
    return definitions


def kubernetes_schemas(swagger: Schema) -> dict[str, Schema]:
    """One standalone schema per kind served by the Kubernetes API."""
    definitions = _kubernetes_definitions(swagger)
    schemas: dict[str, Schema] = {}
    for name, raw in swagger["definitions"].items():
        for gvk in raw.get("x-kubernetes-group-version-kind", []):
            api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
            schemas[schema_file_name(gvk["kind"], api_version)] = {
                "$ref": f"#/definitions/{name}",
                "definitions": _closure(name, definitions),
            }
    return schemas


def crd_schemas(crd: Schema, object_meta: dict[str, Schema]) -> dict[str, Schema]:
    """One schema per served version of a CustomResourceDefinition."""
    kind = crd["spec"]["names"]["kind"]
    group = crd["spec"]["group"]
    schemas: dict[str, Schema] = {}
    for version in crd["spec"]["versions"]:
        body = _strict(version["schema"]["openAPIV3Schema"])
        body["properties"]["metadata"] = {"$ref": f"#/definitions/{_OBJECT_META}"}
        body["additionalProperties"] = False
        body["definitions"] = object_meta
        schemas[schema_file_name(kind, f"{group}/{version['name']}")] = body
    return schemas


def _sources_key(sources: Iterable[GoSource]) -> str:
    text = ",".join(f"{s.module}@{s.version}" for s in sources)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def build_schema_dir(cache_dir: Path) -> Path:
    """Write (once per set of source versions) and return the directory of strict schemas."""
    sources = (KUBERNETES_OPENAPI, *CRD_SOURCES)
    target = cache_dir / "tools" / f"schemas-{_sources_key(sources)}"
    if (target / ".complete").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    swagger = json.loads(module_files(KUBERNETES_OPENAPI)[0].read_text())
    schemas = kubernetes_schemas(swagger)
    object_meta = _closure(_OBJECT_META, _kubernetes_definitions(swagger))
    for source in CRD_SOURCES:
        for path in module_files(source):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc and doc.get("kind") == "CustomResourceDefinition":
                    schemas.update(crd_schemas(doc, object_meta))
    for name, schema in schemas.items():
        (target / name).write_text(json.dumps(schema))
    (target / ".complete").write_text("\n".join(sorted(schemas)))
    logger.info("wrote %d strict schemas to %s", len(schemas), target)
    return target
