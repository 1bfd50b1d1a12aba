"""JSON schemas for kubeconform, made here from pinned sources (no schema catalogue is
reachable from this machine):

    python json_schemas.py k8s SWAGGER_JSON OUT_DIR     # Kubernetes' OpenAPI v2 spec
    python json_schemas.py crd CRD_YAML... OUT_DIR      # CRDs (Strimzi's generator output)

k8s: one standalone schema per kind, `<kind>-<group>-<version>.json`, every $ref inlined,
IntOrString and Quantity as Kubernetes accepts them, and "strict": every object with
declared properties refuses unknown ones (kubeconform -strict relies on that).
crd: `<group>/<kind>_<version>.json` from each served version's openAPIV3Schema, strict the
same way except where the CRD says x-kubernetes-preserve-unknown-fields."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

INT_OR_STRING = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
QUANTITY = {"oneOf": [{"type": "string"}, {"type": "number"}]}


def _strict(schema: Any) -> Any:
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _inline(schema: Any, definitions: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    if isinstance(schema, list):
        return [_inline(v, definitions, seen) for v in schema]
    if not isinstance(schema, dict):
        return schema
    if isinstance(schema.get("$ref"), str):
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name.endswith("util.intstr.IntOrString"):
            return dict(INT_OR_STRING)
        if name.endswith("api.resource.Quantity"):
            return dict(QUANTITY)
        if name in seen:  # a recursive type (JSONSchemaProps): accept anything below
            return {}
        return _inline(definitions[name], definitions, (*seen, name))
    if schema.get("format") == "int-or-string":
        return dict(INT_OR_STRING)
    return {k: _inline(v, definitions, seen) for k, v in schema.items()}


def k8s(swagger: Path, out: Path) -> int:
    definitions = json.loads(swagger.read_text())["definitions"]
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for name, definition in definitions.items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            group = gvk["group"].split(".")[0]
            kind, version = gvk["kind"].lower(), gvk["version"]
            file = f"{kind}-{group}-{version}.json" if group else f"{kind}-{version}.json"
            schema = _strict(_inline(definition, definitions, (name,)))
            (out / file).write_text(json.dumps(schema))
            count += 1
    return count


def crd(files: list[Path], out: Path) -> int:
    count = 0
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"].lower()
            for version in doc["spec"]["versions"]:
                if not version.get("served", True):
                    continue
                schema = _strict(version["schema"]["openAPIV3Schema"])
                target = out / group / f"{kind}_{version['name']}.json"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(json.dumps(schema))
                count += 1
    return count


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "k8s":
        n = k8s(Path(argv[1]), Path(argv[2]))
    elif len(argv) >= 3 and argv[0] == "crd":
        n = crd([Path(a) for a in argv[1:-1]], Path(argv[-1]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(f"json_schemas: {n} schemas written")
    return 0 if n else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
