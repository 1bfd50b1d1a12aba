"""The schema maker of `make proof-deploy` (scripts/deploy_proof/json_schemas.py): what
kubeconform -strict checks against is only as strict as these schemas, so pin that unknown
fields are refused, refs inlined, and IntOrString/Quantity read as Kubernetes reads them."""

from __future__ import annotations

import importlib.util
import json
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
