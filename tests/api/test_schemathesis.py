"""Property-based fuzzing of the served OpenAPI schema: whatever the input, never a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error


@pytest.fixture(scope="module")
def fuzz_server(real_models, tmp_path_factory):
    from tests.api.conftest import Server

    # a short context keeps every generated request quick, whatever max_tokens the fuzzer picks
    srv = Server(
        real_models.default,
        env={
            "LLM_GATEWAY_MAX_MODEL_LEN": "64",
            "LLM_GATEWAY_DEFAULT_MAX_TOKENS": "4",
            "LLM_GATEWAY_MAX_WAITING": "256",
        },
        log_dir=tmp_path_factory.mktemp("fuzz"),
    )
    srv.wait_ready()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def api_schema(fuzz_server):
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    schema.config.update(base_url=fuzz_server.url)
    return schema


def test_no_server_errors(api_schema):
    """Every operation, 25 generated cases each (valid and invalid): no response may be a 5xx."""
    checked = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
        )
        def check(case):
            case.call_and_validate(checks=[not_a_server_error], timeout=60)

        check()
        checked += 1
    assert checked >= 9  # generate, completions, chat, models, info, tokenize, detokenize, health, ready, ...
