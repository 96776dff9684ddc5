# The inference service under Daphne. CPU by default; for GPU hosts build on a CUDA base
# image with the CUDA wheel of the same engine version, e.g.:
#   docker build \
#     --build-arg BASE_IMAGE=nvidia/cuda:13.0.0-cudnn-runtime-ubuntu24.04 \
#     --build-arg MISTRALRS_SPEC="mistralrs==0.9.5+cuda130.sm90" \
#     --build-arg MISTRALRS_FIND_LINKS=<the mistral.rs release assets page> \
#     -t llm-inference:cuda .
# (sm90: Hopper; pick the build for your GPUs' compute capability.)
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HF_HOME=/var/cache/huggingface \
    LLM_BIND_ADDRESS=0.0.0.0 \
    LLM_INFERENCE_PORT=8091

# CUDA base images carry no Python: install one there; the python image has it already.
RUN if ! command -v python3 >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends python3 python3-venv && \
      rm -rf /var/lib/apt/lists/*; \
    fi && python3 -m venv $VIRTUAL_ENV

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

ARG MISTRALRS_SPEC=""
ARG MISTRALRS_FIND_LINKS=""
RUN if [ -n "$MISTRALRS_SPEC" ]; then \
      pip install --force-reinstall --no-deps "$MISTRALRS_SPEC" \
        ${MISTRALRS_FIND_LINKS:+--find-links "$MISTRALRS_FIND_LINKS"}; \
    fi

COPY manage.py ./
COPY inference_service ./inference_service
COPY catalog ./catalog
COPY generation ./generation
COPY access ./access

# Assemble the bundled model and build its tokenizer into the image, so a pod starts
# without that work (and with no network). The build database is thrown away.
RUN useradd --system --uid 10001 --home-dir /app app && mkdir -p $HF_HOME && \
    DJANGO_SECRET_KEY=image-build DATABASE_URL=sqlite:////tmp/build.sqlite3 \
      sh -c "python manage.py migrate --noinput && python manage.py prepare_models" && \
    rm -f /tmp/build.sqlite3 && chown -R app $HF_HOME
USER app

EXPOSE 8091
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8091/health/live', timeout=4)"
# Migrations run once per release (see deploy/kubernetes.yaml), not in every replica.
CMD ["python", "manage.py", "serve"]
