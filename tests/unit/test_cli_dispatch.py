"""The console script without the optional packages: the runtime image may ship without export/ or benchmarks/."""

from __future__ import annotations

import sys

import pytest

from llm_gateway.cli import build_parser, main


@pytest.mark.parametrize("package", ["export", "benchmarks"])
def test_a_missing_package_turns_its_subcommand_into_a_clear_error(package, monkeypatch, capsys):
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, package, None)  # import now raises ImportError
    command = "export" if package == "export" else "bench"
    assert main([command]) == 2
    assert capsys.readouterr().err == f"llm-gateway {command}: not part of this install (no {package} package)\n"
    args = build_parser().parse_args(["serve", "--port", "9"])
    assert (args.command, args.port) == ("serve", 9)
