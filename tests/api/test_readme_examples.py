"""Every `curl` command and Python snippet of the README, run against a real server on the default model.

The README's address (localhost:8000 or 127.0.0.1:8000) is rewritten to the test server's. A fenced block right
after `<!-- readme-test: skip -->` is not run (for an example that needs another setup).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.real
README = (REPO / "README.md").read_text()
BLOCK = re.compile(r"(<!-- readme-test: skip -->\s*)?```(\w*)\n(.*?)```", re.S)
ADDRESS = re.compile(r"(https?://)?(localhost|127\.0\.0\.1):8000")
# questions of the README whose right answer is known (PyTorch fp32 and the default int8 variant agree)
ANSWERS = {"What is the capital of Japan?": "Tokyo", "What is 2 + 2?": "4"}
TEXT_KEYS = ("content", "text", "generated_text", "output_text")


def _blocks(lang: set[str]) -> list[str]:
    return [body for skip, tag, body in BLOCK.findall(README) if tag in lang and not skip]


def curl_commands() -> list[str]:
    commands = []
    for body in _blocks({"bash", "sh", "shell", "console"}):
        for line in body.replace("\\\n", " ").splitlines():
            if line.strip().startswith("curl "):
                commands.append(line.strip())
    return commands


def python_snippets() -> list[str]:
    return _blocks({"python", "py"})


def _texts(payload) -> list[str]:
    """The generated text in any JSON answer shape (choices, deltas, native generate, ...)."""
    if isinstance(payload, dict):
        if "error" in payload:
            raise AssertionError(f"the example got an error: {payload['error']}")
        found = [v for k, v in payload.items() if k in TEXT_KEYS and isinstance(v, str)]
        return found + [t for k, v in payload.items() if k not in TEXT_KEYS for t in _texts(v)]
    if isinstance(payload, list):
        return [t for item in payload for t in _texts(item)]
    return []


def answer_text(output: str) -> str:
    """The text an example produced: from a JSON body, from SSE `data:` frames, or the output itself."""
    try:
        return "".join(_texts(json.loads(output)))
    except json.JSONDecodeError:
        pass
    frames = [line[5:].strip() for line in output.splitlines() if line.startswith("data:")]
    if frames:
        assert frames[-1] == "[DONE]" or "finish_reason" in frames[-1], "the stream did not finish"
        return "".join(t for f in frames if f != "[DONE]" for t in _texts(json.loads(f)))
    return output


def check(snippet: str, output: str) -> None:
    text = answer_text(output)
    assert text.strip(), f"no output from:\n{snippet}"
    for question, answer in ANSWERS.items():
        if question in snippet:
            assert answer in text, f"{question!r} answered {text!r}"


def test_the_readme_has_examples_to_run():
    assert len(curl_commands()) >= 2 and len(python_snippets()) >= 1
    assert any(q in README for q in ANSWERS)  # the first example asks something the model answers right


@pytest.mark.parametrize("command", curl_commands())
def test_readme_curl(server, command):
    run = subprocess.run(["bash", "-c", ADDRESS.sub(server.url, command)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    check(command, run.stdout)


@pytest.mark.parametrize("snippet", python_snippets())
def test_readme_python(server, snippet):
    run = subprocess.run(
        [sys.executable, "-c", ADDRESS.sub(server.url, snippet)], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    check(snippet, run.stdout)
