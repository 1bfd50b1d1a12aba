"""The schema maker of `make proof-deploy` (scripts/deploy_proof/json_schemas.py): what
kubeconform -strict checks against is only as strict as these schemas, so pin that unknown
fields are refused, refs inlined, and IntOrString/Quantity read as Kubernetes reads them."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import yaml

from tests.unit.deploy import support

_spec = importlib.util.spec_from_file_location(
    "json_schemas", support.ROOT / "scripts" / "deploy_proof" / "json_schemas.py")
assert _spec and _spec.loader
json_schemas = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(json_schemas)

SWAGGER = {"definitions": {
    "io.k8s.api.apps.v1.Deployment": {
        "type": "object",
        "properties": {"spec": {"$ref": "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"}},
        "x-kubernetes-group-version-kind": [{"group": "apps", "kind": "Deployment",
                                             "version": "v1"}]},
    "io.k8s.api.apps.v1.DeploymentSpec": {
        "type": "object",
        "properties": {
            "maxSurge": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"},
            "cpu": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "schema": {"$ref": "#/definitions/io.k8s.Props"}}},
    "io.k8s.Props": {"type": "object", "properties": {
        "$ref": {"type": "string"},   # a property named $ref (JSONSchemaProps has one)
        "items": {"$ref": "#/definitions/io.k8s.Props"}}},
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": "string",
                                                         "format": "int-or-string"},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
}}


def test_kubernetes_schemas_are_standalone_and_strict(tmp_path: Path) -> None:
    swagger = tmp_path / "swagger.json"
    swagger.write_text(json.dumps(SWAGGER))
    assert json_schemas.k8s(swagger, tmp_path / "out") == 1
    schema = json.loads((tmp_path / "out" / "deployment-apps-v1.json").read_text())
    spec = schema["properties"]["spec"]
    assert schema["additionalProperties"] is False and spec["additionalProperties"] is False
    assert {"type": "integer"} in spec["properties"]["maxSurge"]["oneOf"]
    assert {"type": "number"} in spec["properties"]["cpu"]["oneOf"]
    assert spec["properties"]["labels"]["additionalProperties"] == {"type": "string"}, \
        "maps keep their value schema"
    props = spec["properties"]["schema"]
    assert props["properties"]["$ref"] == {"type": "string"}
    assert props["properties"]["items"] == {}, "a recursive type stops, accepting anything"
    assert "$ref" not in json.dumps(schema).replace('"$ref": {', "")


def test_crd_schemas_keep_preserved_unknown_fields_open(tmp_path: Path) -> None:
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "spec": {"group": "kafka.strimzi.io", "names": {"kind": "KafkaUser"},
                    "versions": [{"name": "v1", "served": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "properties": {
                            "spec": {"type": "object", "properties": {"a": {"type": "string"}}},
                            "status": {"type": "object", "properties": {},
                                       "x-kubernetes-preserve-unknown-fields": True}}}}},
                                 {"name": "v1beta2", "served": False, "schema": {}}]}}
    path = tmp_path / "crd.yaml"
    path.write_text(yaml.safe_dump(crd))
    assert json_schemas.crd([path], tmp_path / "out") == 1
    schema = json.loads((tmp_path / "out" / "kafka.strimzi.io" / "kafkauser_v1.json")
                        .read_text())
    assert schema["properties"]["spec"]["additionalProperties"] is False
    assert "additionalProperties" not in schema["properties"]["status"]


TOOLS = support.ROOT / "scripts" / "deploy_proof" / "tools.sh"


def _bash(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Runs `script` after sourcing tools.sh, with a fake `go` that records its arguments
    and installs an empty tool into $GOBIN, so no Go module proxy is needed."""
    fake = tmp_path / "fakebin"
    fake.mkdir(exist_ok=True)
    (fake / "go").write_text('#!/bin/sh\necho "$@" >>"$CALLS"\n'
                             'echo "go: downloading something" >&2\n'
                             'printf \'#!/bin/sh\\n\' >"$GOBIN/$TOOL"; chmod +x "$GOBIN/$TOOL"\n')
    (fake / "go").chmod(0o755)
    (tmp_path / "bin").mkdir(exist_ok=True)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}",
           "CALLS": str(tmp_path / "calls"), "bin": str(tmp_path / "bin")}
    return subprocess.run(["bash", "-c", f'source "{TOOLS}"\n{script}'], env=env,
                          capture_output=True, text=True, timeout=30)


def test_a_tool_built_on_first_use_is_captured_as_its_path_alone(tmp_path: Path) -> None:
    """On a fresh machine the first `oldest=$(go_tool ...)` builds the tool: its note must
    not land in the captured path (it did, and steps 1 and 2 ran a two-line "path")."""
    done = _bash('TOOL=promtool; export TOOL\n'
                 'p=$(go_tool promtool v0.316.0 example.org/cmd/promtool -trimpath -tags=a,b)\n'
                 'printf "%s" "$p" >"$bin/first"; "$p" || exit 9\n'
                 'q=$(go_tool promtool v0.316.0 example.org/cmd/promtool -trimpath -tags=a,b)\n'
                 'printf "%s" "$q" >"$bin/second"', tmp_path)
    assert done.returncode == 0, done.stderr
    target = str(tmp_path / "bin" / "promtool-v0.316.0")
    assert (tmp_path / "bin" / "first").read_text() == target
    assert (tmp_path / "bin" / "second").read_text() == target
    assert "building promtool v0.316.0" in done.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == ["install -trimpath -tags=a,b example.org/cmd/promtool@v0.316.0"], \
        "built once, with its build flags before the package"


def test_a_failed_build_leaves_no_tool_and_fails(tmp_path: Path) -> None:
    done = _bash('TOOL=other; export TOOL\np=$(go_tool promtool v1 example.org/x) && exit 3\n'
                 'exit 0', tmp_path)
    assert done.returncode == 0, "a build that installs no binary named like the tool fails"
    assert not (tmp_path / "bin" / "promtool-v1").exists()


def test_the_summary_counts_failures_and_keeps_every_step(tmp_path: Path) -> None:
    done = _bash('row 1 ok "rendered"; row 5 FAIL "promtool"; row 9 skip "why not"\n'
                 'printf "%s\\n" "${rows[@]}"; echo "failures=$failures"', tmp_path)
    lines = done.stdout.splitlines()
    assert lines[-4:] == ["1   ok     rendered", "5   FAIL   promtool", "9   skip   why not",
                          "failures=1"]


_grafana = importlib.util.spec_from_file_location(
    "grafana_rules", support.ROOT / "scripts" / "deploy_proof" / "grafana_rules.py")
assert _grafana and _grafana.loader
grafana_rules = importlib.util.module_from_spec(_grafana)
_grafana.loader.exec_module(grafana_rules)


def test_every_grafana_query_goes_to_promtool_as_grafana_would_run_it() -> None:
    dashboard = json.loads((support.ROOT / "deploy" / "grafana" / "paincare.json").read_text())
    targets = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])
               if "expr" in t]
    found = grafana_rules.queries(dashboard)
    assert targets and set(targets) <= set(found), "every panel's query is checked"
    assert "paincare_http_requests_total" in found, "and the $service variable's selector"
    rules = yaml.safe_load(grafana_rules.rules(found))["groups"][0]["rules"]
    assert len(rules) == len(found)
    assert not any("$" in r["expr"] for r in rules)
    assert grafana_rules.as_query_time('rate(x{service=~"$service"}[$__rate_interval])') == \
        'rate(x{service=~".*"}[5m])'
    assert grafana_rules.as_query_time("rate(x[$__range])") == "rate(x[$__range])", \
        "a variable it does not know stays, for promtool to refuse"


def test_a_dashboard_without_queries_fails_the_check(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"panels": [{"title": "text only"}]}))
    assert grafana_rules.main(str(empty)) == 1
