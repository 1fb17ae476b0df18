"""Bad input to `llm-gateway export`: exit code 2, one clear message with a hint, no traceback, no files."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time

import pytest

from tests.conftest import CLI, run_cli


def assert_clear_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def test_missing_source(tmp_path):
    assert_clear_error(run_cli("export", str(tmp_path / "nope.gguf")), "does not exist", "hint:")
    assert_clear_error(run_cli("export", "./no/such/folder"), "does not exist")


def test_folder_without_config(tmp_path):
    assert_clear_error(run_cli("export", str(tmp_path)), "has no config.json")


def test_hub_id_without_network_is_a_clear_error(tmp_path):
    proc = run_cli("export", "some-org/some-model-that-is-not-cached", cwd=tmp_path)
    assert_clear_error(proc, "Hugging Face Hub", "hint:")


def test_unknown_quant_and_graph_list_the_valid_ones(tiny_source):
    proc = run_cli("export", str(tiny_source), "--quant", "int3")
    assert_clear_error(proc, "invalid choice", "fp32", "int8", "int4")
    proc = run_cli("export", str(tiny_source), "--graph", "tensorrt")
    assert_clear_error(proc, "invalid choice", "auto", "optimum", "gqa")


def test_unsupported_architecture_lists_what_is_supported(tmp_path):
    from transformers import BertConfig, BertModel

    folder = tmp_path / "bert"
    BertModel(
        BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=100)
    ).save_pretrained(folder)
    proc = run_cli("export", str(folder))
    assert_clear_error(proc, "unsupported architecture", "LlamaForCausalLM", "llama")
    proc = run_cli("export", str(folder), "--graph", "gqa")
    assert_clear_error(proc, "does not support", "Qwen2ForCausalLM")


def test_unwritable_destination(tiny_source, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_clear_error(run_cli("export", str(tiny_source), "--out", str(blocker / "m")), "cannot write")
    assert_clear_error(run_cli("export", str(tiny_source), "--out", "/proc/llm-gateway-model"), "cannot write")


@pytest.fixture
def tiny_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if (
        shutil.which("mount") is None
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_full_disk_is_a_clear_error_and_leaves_nothing(tiny_source, tiny_disk):
    proc = run_cli("export", str(tiny_source), "--quant", "fp32", "--out", str(tiny_disk / "m"))
    assert_clear_error(proc, "disk", "hint:")
    assert list(tiny_disk.iterdir()) == []


def test_interrupted_export_leaves_nothing(tiny_source, tmp_path):
    import os

    proc = subprocess.Popen(
        [CLI, "export", str(tiny_source), "--out", str(tmp_path / "m")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".m.tmp-") for p in tmp_path.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, "the export never started staging"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
