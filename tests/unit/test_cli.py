"""CLI parsing: signals, usage errors, and the promise not to import trio."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lxcflow.cli import build_parser, parse_signal
from lxcflow.errors import UsageError


@pytest.mark.parametrize(
    ("text", "number"), [("KILL", 9), ("SIGKILL", 9), ("kill", 9), ("9", 9), ("sigusr1", 10)]
)
def test_parse_signal(text: str, number: int) -> None:
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["0", "65", "SIGNOPE", "", "-9"])
def test_parse_signal_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="invalid signal"):
        parse_signal(text)


def test_global_options_before_or_after_the_command() -> None:
    p = build_parser()
    a = p.parse_args(["-P", "/x", "info", "-n", "web"])
    b = p.parse_args(["info", "-n", "web", "-P", "/x"])
    assert a.lxcpath == b.lxcpath == "/x"


def test_command_after_double_dash() -> None:
    a = build_parser().parse_args(["execute", "-n", "w", "--", "ls", "-l"])
    assert a.command == ["--", "ls", "-l"]  # main() drops the separator


def test_client_imports_neither_trio_nor_pyroute2() -> None:
    code = (
        "import sys, lxcflow.cli, lxcflow.client;"
        "print(sorted(m for m in ('trio', 'pyroute2', 'structlog') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
