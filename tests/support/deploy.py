"""The deployment files' locations and parsers, for the tests that check them (offline ones in
tests/unit, those that render with kubectl or run promtool in tests/e2e)."""

import json
import re

import jsonschema
import kubernetes_validate

from tests.support.server import ROOT

DEPLOY = ROOT / "deploy"
# The oldest Kubernetes these manifests claim (deploy/README.md), and the newest schemas
# that kubernetes-validate has.
KUBERNETES_VERSIONS = ["1.27", kubernetes_validate.latest_version()]
APP_VARIANTS = {"cpu": "overlays/cpu", "gpu": "overlays/gpu"}
MIGRATE_VARIANTS = {"cpu": "overlays/cpu/migrate", "gpu": "overlays/gpu/migrate"}
CRD_SCHEMAS = ROOT / "tests" / "fixtures" / "crds"


def strict(schema):
    """A CRD schema that refuses the fields it does not declare."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {key: strict(value) for key, value in schema.items()}
    if "properties" in schema and "additionalProperties" not in schema \
            and not schema.get("x-kubernetes-preserve-unknown-fields"):
        schema["additionalProperties"] = False
    return schema


def crd_validators() -> dict[tuple[str, str], jsonschema.Draft7Validator]:
    validators = {}
    for path in CRD_SCHEMAS.glob("*.json"):
        crd = json.loads(path.read_text())
        validators[(crd["apiVersion"], crd["kind"])] = jsonschema.Draft7Validator(strict(crd["schema"]))
    return validators


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]
