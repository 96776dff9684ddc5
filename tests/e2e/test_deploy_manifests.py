"""The deployment files, checked offline: every Kustomize variant rendered with `kubectl
kustomize` and validated strictly against the Kubernetes schemas (kubernetes-validate
ships them), the properties an operator relies on asserted on the rendered output, and
the image's Dockerfile, build context, lock file, entrypoint and docker compose set-up.
"""

import os
import re
import shutil
import subprocess
from fnmatch import fnmatch
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.support.deploy import (
    DEPLOY, KUBERNETES_VERSIONS, APP_VARIANTS, MIGRATE_VARIANTS, crd_validators, dockerfile_instructions,
)
from tests.support.server import ROOT

SECRET_NAMES = {"DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL"}
# Custom resources: no schema in kubernetes-validate; checked structurally below.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl (kustomize) is not installed")


def kustomize(directory: Path) -> list[dict]:
    result = subprocess.run([KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, list[dict]]:
    """Every variant an operator can install, rendered: the services, their migration Jobs,
    and the GPU variant with the shared model cache volume switched on."""
    if KUBECTL is None:
        pytest.skip("kubectl (kustomize) is not installed")
    variants = {name: kustomize(DEPLOY / path) for name, path in APP_VARIANTS.items()}
    variants |= {f"{name}-migrate": kustomize(DEPLOY / path) for name, path in MIGRATE_VARIANTS.items()}
    for name, components in [("gpu-pvc", ["model-cache-pvc"]), ("gpu-hub", ["model-cache-pvc", "hub-online"])]:
        overlay = tmp_path_factory.mktemp(name)
        relative = os.path.relpath(DEPLOY, overlay)
        (overlay / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            f"resources:\n  - {relative}/overlays/gpu\ncomponents:\n"
            + "".join(f"  - {relative}/components/{component}\n" for component in components)
        )
        variants[name] = kustomize(overlay)
    return variants


def only(docs: list[dict], kind: str) -> dict:
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def env_of(container: dict) -> dict[str, dict]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def server(docs: list[dict]) -> dict:
    (container,) = [c for c in pod_spec(only(docs, "Deployment"))["containers"] if c["name"] == "server"]
    return container


def app_variants(rendered) -> list[tuple[str, list[dict]]]:
    return [(name, docs) for name, docs in rendered.items() if not name.endswith("-migrate")]


# --- Schemas ---------------------------------------------------------------------------------


@needs_kubectl
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_resource_validates_strictly(rendered, version):
    checked = 0
    for variant, docs in rendered.items():
        for doc in docs:
            if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
                continue  # no schema offline: test_service_monitor_scrapes_the_service
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(part) for part in exc.path)
                pytest.fail(f"{variant}: {doc['kind']}/{doc['metadata']['name']}: {path}: {exc.message}")
            checked += 1
    assert checked >= 20


@needs_kubectl
def test_each_variant_has_the_resources_an_operator_needs(rendered):
    for variant, docs in app_variants(rendered):
        kinds = {doc["kind"] for doc in docs}
        assert {"Deployment", "Service", "ConfigMap", "ServiceAccount", "PodDisruptionBudget",
                "HorizontalPodAutoscaler", "ServiceMonitor", "Ingress"} <= kinds, variant
        assert "Job" not in kinds, f"{variant}: the migration Job is applied (and awaited) first, on its own"
    for variant in MIGRATE_VARIANTS:
        assert [doc["kind"] for doc in rendered[f"{variant}-migrate"]] == ["Job"]


@needs_kubectl
def test_service_monitor_scrapes_the_service(rendered):
    for variant, docs in app_variants(rendered):
        monitor, service = only(docs, "ServiceMonitor"), only(docs, "Service")
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert set(monitor["spec"]) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        port_names = {port["name"] for port in service["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert set(endpoint) <= {"port", "path", "scheme", "interval", "scrapeTimeout", "relabelings"}
            assert endpoint["port"] in port_names and endpoint["path"] == "/metrics", variant


# --- Secrets ---------------------------------------------------------------------------------


@needs_kubectl
def test_secrets_are_referenced_never_inlined(rendered):
    for variant, docs in rendered.items():
        for doc in docs:
            assert doc["kind"] != "Secret", f"{variant}: a Secret in the manifests ({doc['metadata']['name']})"
            if doc["kind"] == "ConfigMap":
                assert not SECRET_NAMES & set(doc["data"]), f"{variant}: a secret in a ConfigMap"
            if doc["kind"] not in {"Deployment", "Job"}:
                continue
            spec = pod_spec(doc)
            for container in spec.get("initContainers", []) + spec["containers"]:
                for name, entry in env_of(container).items():
                    if name in SECRET_NAMES or re.search(r"SECRET|PASSWORD|TOKEN", name):
                        assert "value" not in entry, f"{variant}: {name} written in the manifest"
                        assert entry["valueFrom"]["secretKeyRef"]["name"] == "llm-inference"
    server_env = env_of(server(rendered["cpu"]))
    assert SECRET_NAMES <= set(server_env)
    job_env = env_of(pod_spec(only(rendered["cpu-migrate"], "Job"))["containers"][0])
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL"} <= set(job_env)


# --- The Deployment ---------------------------------------------------------------------------


@needs_kubectl
def test_no_replica_runs_migrations(rendered):
    for variant, docs in app_variants(rendered):
        spec = pod_spec(only(docs, "Deployment"))
        for container in spec.get("initContainers", []) + spec["containers"]:
            command = " ".join(container.get("command", []) + container.get("args", []))
            assert "migrate" not in command, f"{variant}: {container['name']} runs migrations"


@needs_kubectl
def test_migrations_run_in_one_job_with_the_release_image(rendered):
    for variant in MIGRATE_VARIANTS:
        job = only(rendered[f"{variant}-migrate"], "Job")
        spec = pod_spec(job)
        (container,) = spec["containers"]
        assert container["command"] == ["python", "manage.py", "migrate", "--noinput"]
        assert job["spec"]["parallelism"] == 1 and job["spec"]["completions"] == 1
        assert spec["restartPolicy"] == "Never"
        # Docker-link variables of the Service would set LLM_INFERENCE_PORT=tcp://...
        assert spec["enableServiceLinks"] is False
        assert container["image"] == server(rendered[variant])["image"], variant


@needs_kubectl
def test_probes_and_the_drain(rendered):
    for variant, docs in app_variants(rendered):
        spec = pod_spec(only(docs, "Deployment"))
        container = server(docs)
        env = env_of(container)
        port_names = {port["name"]: port["containerPort"] for port in container["ports"]}
        for probe, path in [("startupProbe", "/health/ready"), ("livenessProbe", "/health/live"),
                            ("readinessProbe", "/health/ready")]:
            assert container[probe]["httpGet"]["path"] == path, (variant, probe)
            assert container[probe]["httpGet"]["port"] in port_names, (variant, probe)
        startup = container["startupProbe"]
        # Sized for a model load: minutes, not seconds.
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, variant
        # Loads run in engine worker processes and never freeze the web process: a stuck pod
        # is restarted within a minute, on GPU nodes too.
        liveness = container["livenessProbe"]
        assert liveness["periodSeconds"] * liveness["failureThreshold"] <= 60, variant
        # The port the settings read is the container's port, and no Service link overrides it.
        assert int(env["LLM_INFERENCE_PORT"]["value"]) == port_names["http"]
        assert spec["enableServiceLinks"] is False
        assert only(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == \
            env["LLM_INFERENCE_PORT"]["value"]
        # SIGTERM comes after preStop; the drain then lasts up to LLM_SHUTDOWN_GRACE_SECONDS.
        pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
        assert pre_stop[0] == "sleep"
        grace = float(env["LLM_SHUTDOWN_GRACE_SECONDS"]["value"])
        assert spec["terminationGracePeriodSeconds"] > grace + float(pre_stop[1]), variant


@needs_kubectl
def test_security_context_and_writable_paths(rendered):
    for variant, docs in app_variants(rendered):
        spec = pod_spec(only(docs, "Deployment"))
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True
        assert pod_security["runAsUser"] == 10001 == pod_security["fsGroup"]  # the image's user
        assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        for container in spec.get("initContainers", []) + spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, (variant, container["name"])
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes
        container = server(docs)
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        env = env_of(container)
        # Where the service writes, with the root filesystem read-only: /tmp and the model cache.
        assert "/tmp" in mounts
        hf_home = env["HF_HOME"]["value"]
        assert mounts.get(hf_home) == "model-cache"
        assert env["LLM_MODEL_CACHE_DIR"]["value"].startswith(hf_home + "/")
        # The init container fills the model cache volume from the image's copy.
        (init,) = spec["initContainers"]
        assert init["image"] == container["image"]
        assert hf_home in init["command"][-1] and init["volumeMounts"][0]["name"] == "model-cache"
        assert "emptyDir" in volumes["tmp"]
    pvc_volume = {v["name"]: v for v in pod_spec(only(rendered["gpu-pvc"], "Deployment"))["volumes"]}["model-cache"]
    assert set(pvc_volume) == {"name", "persistentVolumeClaim"}
    assert pvc_volume["persistentVolumeClaim"]["claimName"] == only(rendered["gpu-pvc"], "PersistentVolumeClaim")["metadata"]["name"]


@needs_kubectl
def test_gpu_resources_only_in_the_gpu_variant(rendered):
    for variant in ["cpu", "cpu-migrate"]:
        text = yaml.safe_dump_all(rendered[variant])
        assert "nvidia" not in text, f"{variant} mentions nvidia"
    cpu = only(rendered["cpu"], "Deployment")
    assert cpu["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert ":" in server(rendered["cpu"])["image"] and not server(rendered["cpu"])["image"].endswith("-cuda")

    for variant in ["gpu", "gpu-pvc", "gpu-hub"]:
        deployment = only(rendered[variant], "Deployment")
        spec = pod_spec(deployment)
        container = server(rendered[variant])
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert spec["runtimeClassName"] == "nvidia"
        assert spec["nodeSelector"]
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
        # A rollout on a cluster with no spare GPU: stop one, then start its successor.
        assert deployment["spec"]["strategy"] == {
            "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
        assert container["image"].endswith("-cuda")
        for init in spec["initContainers"]:
            assert "nvidia.com/gpu" not in init.get("resources", {}).get("limits", {})
    # The migration Job needs no GPU.
    job = only(rendered["gpu-migrate"], "Job")
    assert "nvidia.com/gpu" not in yaml.safe_dump(job["spec"]["template"]["spec"]["containers"])


def config_of(docs: list[dict]) -> dict[str, str]:
    return only(docs, "ConfigMap")["data"]


@needs_kubectl
def test_gpu_rollouts_and_drains_leave_a_pod_serving(rendered):
    """No outage on GPU nodes: at least two replicas, one pod at a time out (rollout and node
    drain), a drain as long as the longest answer, and a concurrency for a GPU, not a CPU."""
    for variant in ["gpu", "gpu-pvc", "gpu-hub"]:
        docs = rendered[variant]
        hpa, pdb = only(docs, "HorizontalPodAutoscaler"), only(docs, "PodDisruptionBudget")
        assert hpa["spec"]["minReplicas"] >= 2, variant
        assert hpa["spec"]["minReplicas"] - pdb["spec"]["maxUnavailable"] >= 1, variant
        rolling = only(docs, "Deployment")["spec"]["strategy"]["rollingUpdate"]
        assert hpa["spec"]["minReplicas"] - rolling["maxUnavailable"] >= 1, variant
        # LLM_MAX_TOKENS_LIMIT (4,096) tokens at 25 tokens/s, the slowest stream of a busy GPU.
        grace = float(env_of(server(docs))["LLM_SHUTDOWN_GRACE_SECONDS"]["value"])
        assert grace >= 4096 / 25, variant
        assert int(config_of(docs)["LLM_MAX_CONCURRENT_REQUESTS"]) >= 16, variant
        assert int(config_of(docs)["LLM_MAX_QUEUED_REQUESTS"]) >= int(config_of(docs)["LLM_MAX_CONCURRENT_REQUESTS"])
    assert config_of(rendered["cpu"])["LLM_MAX_CONCURRENT_REQUESTS"] == "4"


@needs_kubectl
def test_hub_access_is_offline_unless_asked_with_an_optional_token(rendered):
    for variant, docs in app_variants(rendered):
        token = env_of(server(docs))["HF_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert token == {"name": "llm-inference", "key": "HF_TOKEN", "optional": True}, variant
        expected = "false" if variant == "gpu-hub" else "true"
        assert config_of(docs)["HF_HUB_OFFLINE"] == expected, variant


@needs_kubectl
def test_autoscaling_disruption_budget_and_service(rendered):
    for variant, docs in app_variants(rendered):
        deployment = only(docs, "Deployment")
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        # The HPA owns the replica count; a `replicas` field would reset it at each apply.
        assert "replicas" not in deployment["spec"], variant
        hpa = only(docs, "HorizontalPodAutoscaler")
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                 "name": deployment["metadata"]["name"]}
        assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
        custom = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
        assert custom == ["llm_requests_queued"], variant
        resources = [m["resource"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Resource"]
        assert resources == (["cpu"] if variant == "cpu" else []), variant
        pdb = only(docs, "PodDisruptionBudget")
        assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        assert pdb["spec"]["maxUnavailable"] == 1
        service = only(docs, "Service")
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert service["spec"]["ports"][0]["targetPort"] in {p["name"] for p in server(docs)["ports"]}


@needs_kubectl
def test_ingress_keeps_streams_flowing(rendered):
    for variant, docs in app_variants(rendered):
        ingress, service = only(docs, "Ingress"), only(docs, "Service")
        annotations = ingress["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
        assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 600
        assert int(annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 600
        backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
        assert backend["name"] == service["metadata"]["name"]
        assert backend["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}
        assert ingress["spec"]["tls"], variant
        # The public host name is one the service accepts.
        allowed = env_of(server(docs))["DJANGO_ALLOWED_HOSTS"]["value"].split(",")
        assert ingress["spec"]["rules"][0]["host"] in allowed


# --- Model pools -------------------------------------------------------------------------------
# The Gateway API's HTTPRoute and the Inference Extension's InferencePool are custom resources:
# validated against their CRDs' schemas (tests/fixtures/crds, from the upstream repositories),
# with unknown fields refused as `kubectl apply --validate=strict` does. Their CEL rules are not run.


def validate_all(docs: list[dict]) -> None:
    validators = crd_validators()
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        if key in validators:
            error = next(validators[key].iter_errors(doc), None)
            assert error is None, f"{doc['kind']}/{doc['metadata']['name']}: {list(error.path)}: {error.message}"
        elif key not in CUSTOM_KINDS:
            for version in KUBERNETES_VERSIONS:
                kubernetes_validate.validate(doc, version, strict=True)


@needs_kubectl
def test_model_pools_route_each_model_to_its_own_deployment():
    docs = kustomize(DEPLOY / "pools")
    validate_all(docs)
    kinds = [doc["kind"] for doc in docs]
    assert "Ingress" not in kinds and kinds.count("ServiceMonitor") == 1  # the gateway routes; one scrape for all
    deployments = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "Deployment"}
    assert len(deployments) >= 2
    configs = {doc["metadata"]["name"]: doc["data"] for doc in docs if doc["kind"] == "ConfigMap"}
    inference_pools = [doc for doc in docs if doc["kind"] == "InferencePool"]
    route = only(docs, "HTTPRoute")
    routed = {header["value"]: rule["backendRefs"][0]["name"] for rule in route["spec"]["rules"]
              for match in rule["matches"] for header in match.get("headers", [])
              if header["name"] == "X-Gateway-Model-Name"}
    for rule in route["spec"]["rules"]:
        assert rule["timeouts"]["request"] == "1h"  # a stream is not cut by the gateway
        for backend in rule["backendRefs"]:
            assert (backend["group"], backend["kind"]) == ("inference.networking.k8s.io", "InferencePool")
    scaled = {doc["spec"]["scaleTargetRef"]["name"] for doc in docs if doc["kind"] == "HorizontalPodAutoscaler"}
    assert scaled == set(deployments)  # each pool scales on its own
    served = []
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        for other_name, other in deployments.items():
            if other_name != name:  # no Deployment, PDB or Service takes another pool's pods
                assert not selector.items() <= other["spec"]["template"]["metadata"]["labels"].items()
        for kind in ["PodDisruptionBudget", "Service"]:
            (own,) = [doc for doc in docs if doc["kind"] == kind and (doc["spec"].get("selector", {}).get(
                "matchLabels") or doc["spec"].get("selector")).items() <= labels.items()]
        (container,) = pod_spec(deployment)["containers"]
        (config_name,) = [source["configMapRef"]["name"] for source in container["envFrom"]]
        models = configs[config_name]["LLM_ALLOWED_MODELS"].split(",")
        (pool,) = [p for p in inference_pools if p["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert pool["spec"]["targetPorts"] == [{"number": container["ports"][0]["containerPort"]}]
        for model in models:
            assert routed[model] == pool["metadata"]["name"], model
        served += models
    assert sorted(served) == sorted(routed)  # every routed model is served by the pool it goes to, once


# --- The image -----------------------------------------------------------------------------------


def dockerignore_patterns() -> list[tuple[bool, str]]:
    patterns = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            patterns.append((not line.startswith("!"), line.lstrip("!").rstrip("/")))
    return patterns


def in_build_context(path: str, patterns) -> bool:
    """Docker's rule: the last pattern that matches the path (or a folder above it) decides."""
    included = True
    parents = [path] + ["/".join(path.split("/")[:i]) for i in range(1, path.count("/") + 1)]
    for excludes, pattern in patterns:
        if any(fnmatch(candidate, pattern) or (pattern.startswith("**/") and
               any(fnmatch("/".join(candidate.split("/")[i:]), pattern[3:]) for i in range(candidate.count("/") + 1)))
               for candidate in parents):
            included = not excludes
    return included


def test_build_context_holds_the_service_and_nothing_for_development():
    patterns = dockerignore_patterns()
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    context = {path for path in tracked if (ROOT / path).is_file() and in_build_context(path, patterns)}
    for needed in ["manage.py", "requirements.txt", "requirements.lock", "requirements-bundled.txt",
                   "inference_service/settings/__init__.py",
                   "generation/engine/worker.py", "generation/engine/runner.py", "generation/engine/model_files.py", "catalog/models.py", "access/models.py",
                   "inference_service/management/commands/serve.py", "generation/management/commands/prepare_models.py",
                   "deploy/docker/entrypoint.sh", "deploy/docker/healthcheck.py", "deploy/wheels/README.md"]:
        assert needed in context, needed
    for path in context:
        assert not path.startswith(("tests/", "docs/", "benchmark/", ".")), path
        assert path != "benchmark/management/commands/bench.py"
        assert not path.endswith((".sqlite3", "requirements-dev.txt", "requirements-bench.txt")), path
    for secret_or_local in [".env", "db.sqlite3", ".venv/bin/python"]:
        assert not in_build_context(secret_or_local, patterns), secret_or_local
    # Every file the Dockerfile copies from the context is in it.
    for op, args in dockerfile_instructions():
        if op == "COPY" and "--from=" not in args:
            for source in args.split()[:-1]:
                source = source.rstrip("/")
                assert any(path == source or path.startswith(source + "/") for path in context), source
    # What the service runs never imports the benchmark that the image leaves out.
    for path in context:
        if path.endswith(".py"):
            text = (ROOT / path).read_text()
            assert not re.search(r"^\s*(from|import)\s+benchmark", text, re.M), path
            assert "management.commands.bench" not in text, path


# --- The entrypoint ---------------------------------------------------------------------------


@pytest.fixture
def entrypoint_env(tmp_path):
    """The image's entrypoint, with a stand-in `python` that records its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/python-calls\n')
    fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    return tmp_path, env


def run_entrypoint(env, cwd, *command):
    return subprocess.run(["sh", str(DEPLOY / "docker" / "entrypoint.sh"), *command], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=30)


def test_entrypoint_migrates_sqlite_only(entrypoint_env):
    tmp_path, env = entrypoint_env
    calls = tmp_path / "python-calls"
    result = run_entrypoint({**env, "DATABASE_URL": "postgres://u:p@db:5432/llm"}, tmp_path, "echo", "serving")
    assert result.returncode == 0 and result.stdout.strip() == "serving"
    assert not calls.exists(), "migrations run by a replica with PostgreSQL"

    (tmp_path / "data").mkdir()
    result = run_entrypoint({**env, "DATABASE_URL": f"sqlite:///{tmp_path}/data/db.sqlite3"}, tmp_path, "echo", "serving")
    assert result.returncode == 0 and result.stdout.strip() == "serving"
    assert calls.read_text().split("\n")[0] == "manage.py migrate --noinput"


def test_entrypoint_reads_the_secret_key_from_a_file(entrypoint_env):
    tmp_path, env = entrypoint_env
    (tmp_path / "key").write_text("from-the-file")
    env = {**env, "DATABASE_URL": "postgres://u:p@db:5432/llm", "DJANGO_SECRET_KEY_FILE": str(tmp_path / "key")}
    result = run_entrypoint(env, tmp_path, "sh", "-c", 'echo "$DJANGO_SECRET_KEY"')
    assert result.stdout.strip() == "from-the-file"
    result = run_entrypoint({**env, "DJANGO_SECRET_KEY": "from-the-environment"}, tmp_path, "sh", "-c", 'echo "$DJANGO_SECRET_KEY"')
    assert result.stdout.strip() == "from-the-environment"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_entrypoint_explains_an_unwritable_sqlite_folder(entrypoint_env):
    tmp_path, env = entrypoint_env
    locked = tmp_path / "read-only"
    locked.mkdir(mode=0o555)
    result = run_entrypoint({**env, "DATABASE_URL": f"sqlite:///{locked}/db.sqlite3"}, tmp_path, "echo", "serving")
    assert result.returncode == 78
    assert "not writable" in result.stderr and "DATABASE_URL" in result.stderr


def test_entrypoint_explains_a_missing_sqlite_folder(entrypoint_env):
    tmp_path, env = entrypoint_env
    result = run_entrypoint({**env, "DATABASE_URL": f"sqlite:///{tmp_path}/absent/db.sqlite3"}, tmp_path, "echo", "x")
    assert result.returncode == 78
    assert "Mount a writable volume" in result.stderr


# --- docker compose ---------------------------------------------------------------------------------


def test_compose_runs_two_replicas_behind_a_streaming_load_balancer():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "secret-key", "migrate", "app", "lb"} <= set(services)
    app, migrate, lb = services["app"], services["migrate"], services["lb"]
    assert app["deploy"]["replicas"] == 2
    assert migrate["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["depends_on"]["secret-key"]["condition"] == "service_completed_successfully"
    for service in (app, migrate):
        assert service["environment"]["DATABASE_URL"].startswith("postgres://")
        assert service["read_only"] is True and "/tmp" in service["tmpfs"]
        # No key written in the file: the caller's, or one generated on the laptop.
        assert service["environment"]["DJANGO_SECRET_KEY"] == "${DJANGO_SECRET_KEY:-}"
        assert service["environment"]["DJANGO_SECRET_KEY_FILE"].startswith("/var/lib/llm-inference/")
    assert "REDIS_URL" in app["environment"]
    grace = float(app["environment"]["LLM_SHUTDOWN_GRACE_SECONDS"])
    assert float(app["stop_grace_period"].rstrip("s")) > grace
    assert "./deploy/compose/nginx.conf:/etc/nginx/nginx.conf:ro" in lb["volumes"]
    nginx = (DEPLOY / "compose" / "nginx.conf").read_text()
    for directive in ["proxy_buffering off;", "proxy_read_timeout 3600s;", "proxy_http_version 1.1;",
                      "proxy_set_header X-Forwarded-For $remote_addr;", "server app:8091 resolve;",
                      "proxy_set_header Upgrade $http_upgrade;"]:
        assert directive in nginx, directive
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        result = subprocess.run([docker, "compose", "config", "--quiet"], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


# --- Monitoring ------------------------------------------------------------------------------------
# That every query names a metric of /metrics is checked against a real server in tests/e2e/test_metrics.py.


def test_alert_rules_pass_promtool(tmp_path):
    """The PrometheusRule's spec is a Prometheus rules file: promtool (Debian's prometheus
    package, `make test-tools`) checks its syntax, PromQL and templates."""
    rule = yaml.safe_load((DEPLOY / "monitoring" / "prometheusrule.yaml").read_text())
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    alerts = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    assert alerts and all(r["labels"]["severity"] in {"warning", "critical"} and r["annotations"]["summary"]
                          for r in alerts)
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (make test-tools)")
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump(rule["spec"]))
    result = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts)} rules found" in result.stdout
    # The alerts fire on the series the service writes, and stay quiet on a healthy one.
    def fired(alert: str, summary: str) -> dict:
        (rule,) = [r for r in alerts if r["alert"] == alert]
        return {"summary": summary, "description": rule["annotations"]["description"]}

    tests = {
        "rule_files": [str(rules_file)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": 'llm_requests_total{namespace="ns", model="m", endpoint="chat", status="200"}',
                 "values": "0+10x30"},
                {"series": 'llm_requests_total{namespace="ns", model="m", endpoint="chat", status="503"}',
                 "values": "0+2x30"},
                {"series": 'llm_engine_worker_crashes_total{namespace="ns", pod="p", model="m"}',
                 "values": "0 0 0 1 1 1 1 1"},
                {"series": 'llm_models_loaded{namespace="ns", pod="p"}', "values": "2x30"},
            ],
            "alert_rule_test": [
                {"eval_time": "20m", "alertname": "LLMHighErrorRate",
                 "exp_alerts": [{"exp_labels": {"severity": "critical", "namespace": "ns", "model": "m"},
                                 "exp_annotations": fired("LLMHighErrorRate",
                                                          "16.67% of requests for m fail with a 5xx.")}]},
                {"eval_time": "5m", "alertname": "LLMEngineWorkerCrashes",
                 "exp_alerts": [{"exp_labels": {"severity": "warning", "namespace": "ns", "pod": "p", "model": "m"},
                                 "exp_annotations": fired("LLMEngineWorkerCrashes",
                                                          "The engine worker of m on p crashed or hung.")}]},
                {"eval_time": "20m", "alertname": "LLMInferenceAbsent", "exp_alerts": []},
                {"eval_time": "20m", "alertname": "LLMNoModelLoaded", "exp_alerts": []},
            ],
        }],
    }
    tests_file = tmp_path / "tests.yaml"
    tests_file.write_text(yaml.safe_dump(tests))
    result = subprocess.run([promtool, "test", "rules", str(tests_file)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
