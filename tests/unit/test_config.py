"""Settings: the environment read once, and the engine's share of it."""

from pathlib import Path

import pytest

from app.config import SettingsError, load_settings


def test_engine_config_carries_every_engine_setting():
    settings = load_settings(
        {
            "LLM_GATEWAY_MODEL_DIR": "/models/x",
            "LLM_GATEWAY_THREADS": "3",
            "LLM_GATEWAY_ALLOW_SPINNING": "false",
            "LLM_GATEWAY_MAX_RUNNING": "5",
            "LLM_GATEWAY_MAX_WAITING": "7",
            "LLM_GATEWAY_MAX_MODEL_LEN": "512",
            "LLM_GATEWAY_PREFILL_CHUNK": "64",
            "LLM_GATEWAY_KV_BUDGET_MB": "96",
        }
    )
    config = settings.engine_config()
    assert (config.model_dir, config.threads, config.allow_spinning) == (Path("/models/x"), 3, False)
    assert (config.max_running, config.max_waiting, config.max_len, config.prefill_chunk) == (5, 7, 512, 64)
    assert config.kv_budget_mb == 96


def test_a_bad_value_names_its_variable():
    with pytest.raises(SettingsError, match="LLM_GATEWAY_PREFILL_CHUNK"):
        load_settings({"LLM_GATEWAY_PREFILL_CHUNK": "8"})


@pytest.mark.parametrize(
    ("value", "message"),
    [("-1", "LLM_GATEWAY_KV_BUDGET_MB=-1: must be 0 \\(no budget\\) or a size in MB"),
     ("lots", "LLM_GATEWAY_KV_BUDGET_MB='lots' is not valid")],
)  # fmt: skip
def test_a_bad_kv_budget_says_what_is_expected(value, message):
    with pytest.raises(SettingsError, match=message):
        load_settings({"LLM_GATEWAY_KV_BUDGET_MB": value})
