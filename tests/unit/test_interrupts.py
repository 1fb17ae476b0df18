"""How export and bench end when something goes wrong: 130 for an interrupt, 1 for an internal error."""

import pytest

from app.interrupts import exit_code


def test_keyboard_interrupt_and_caught_signals_exit_130(capsys):
    assert exit_code(KeyboardInterrupt(), [], "export", "nothing was written", "") == 130
    # a signal that surfaced as another exception from inside a C extension is still an interrupt
    assert exit_code(RuntimeError("read failed"), [15], "bench", "no report written", "") == 130
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "llm-gateway export: interrupted; nothing was written",
        "llm-gateway bench: interrupted; no report written",
    ]


def test_unexpected_error_exits_1_with_one_line(capsys, monkeypatch):
    monkeypatch.delenv("LLM_GATEWAY_DEBUG", raising=False)
    assert exit_code(ValueError("boom"), [], "export", "x", "\n  hint") == 1
    assert capsys.readouterr().err == "llm-gateway export: internal error: ValueError: boom\n  hint\n"
    monkeypatch.setenv("LLM_GATEWAY_DEBUG", "1")
    try:
        raise ValueError("boom")
    except ValueError as exc:
        assert exit_code(exc, [], "export", "x", "") == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and err.endswith("internal error: ValueError: boom\n")


def test_other_base_exceptions_go_on_up():
    with pytest.raises(SystemExit):
        exit_code(SystemExit(3), [], "export", "x", "")
