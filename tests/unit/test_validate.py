"""lxcflow.validate: each rule on what a user may type, and its one message."""

from __future__ import annotations

import ast
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lxcflow import validate
from lxcflow.errors import UsageError

REPO = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------- names


@pytest.mark.parametrize("name", ["web", "Web-01", "a.b_c", "x" * 64, "a..b", "1"])
def test_valid_names(name: str) -> None:
    assert validate.container_name(name) == name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "it is empty"),
        (".", "'.' and '..' are not names"),
        ("..", "'.' and '..' are not names"),
        ("a/b", "it contains '/'"),
        ("x" * 65, "it is 65 characters long (at most 64)"),
        ("web server", "' ' is not allowed (only letters, digits, '-', '_', '.')"),
        ("café", "'é' is not allowed (only letters, digits, '-', '_', '.')"),
        ("a:b", "':' is not allowed (only letters, digits, '-', '_', '.')"),
        ("..hidden", "it must start with a letter or a digit"),
        ("-rf", "it must start with a letter or a digit"),
        ("_x", "it must start with a letter or a digit"),
    ],
)
def test_invalid_names(name: str, problem: str) -> None:
    with pytest.raises(UsageError) as info:
        validate.container_name(name)
    assert str(info.value) == f"invalid container name {name!r}: {problem}"


@pytest.mark.parametrize("parent", ["lxcflow", "lxcflow/test-1", "a/b/c", "x" * 128])
def test_valid_cgroup_parents(parent: str) -> None:
    assert validate.cgroup_parent(parent) == parent


@pytest.mark.parametrize(
    ("parent", "message"),
    [
        ("", "invalid cgroup parent '': it is empty"),
        ("a//b", "invalid cgroup parent 'a//b': segment '': it is empty"),
        ("a/../b", "invalid cgroup parent 'a/../b': segment '..': '.' and '..' are not names"),
        ("/abs", "invalid cgroup parent '/abs': segment '': it is empty"),
        ("x" * 129,
         f"invalid cgroup parent {'x' * 129!r}: it is 129 characters long (at most 128)"),
        ("a/b c", "invalid cgroup parent 'a/b c': segment 'b c': ' ' is not allowed"),
    ],
)
def test_invalid_cgroup_parents(parent: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        validate.cgroup_parent(parent)


# ---------------------------------------------------------------- signals


@pytest.mark.parametrize(
    ("value", "number"),
    [("KILL", 9), ("SIGKILL", 9), ("kill", 9), ("9", 9), ("sigusr1", 10), (15, 15),
     ("SIGPWR", int(signal.SIGPWR)), ("64", 64),
     ("SIGRTMIN+3", int(signal.SIGRTMIN) + 3), ("rtmax-1", int(signal.SIGRTMAX) - 1),
     ("RTMIN+0", int(signal.SIGRTMIN))],
)
def test_signal_numbers(value: str | int, number: int) -> None:
    assert validate.signal_number(value) == number


@pytest.mark.parametrize("value", ["0", "65", 0, 65, -9])
def test_signal_numbers_out_of_range(value: str | int) -> None:
    with pytest.raises(UsageError) as info:
        validate.signal_number(value)
    assert str(info.value) == f"{value!r} is not a signal number (1-64)"


@pytest.mark.parametrize(
    "value",
    ["SIGNOPE", "", "-9", "SIG_IGN", "DFL", "NSIG", "SIGRTMIN+40", "RTMAX-99", "RTMIN+",
     "SIGRTMIN+-1", "9.0", True],
)
def test_signal_names_refused(value: str) -> None:
    with pytest.raises(UsageError) as info:
        validate.signal_number(value)
    assert str(info.value) == f"{value!r} is not a signal name or a number 1-64"


# ---------------------------------------------------------------- interfaces and addresses


@pytest.mark.parametrize("name", ["eth0", "br-test", "x" * 15, "vethAB.1", "a"])
def test_interface_names(name: str) -> None:
    assert validate.interface_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 16, ".", "..", "eth/0", "eth:0", "eth 0", "eth\t0",
                                  "eth\x00"])
def test_interface_names_refused(name: str) -> None:
    with pytest.raises(UsageError) as info:
        validate.interface_name(name)
    assert str(info.value) == (
        f"{name!r} is not an interface name (1-15 characters, no '/', ':', blanks)"
    )


@pytest.mark.parametrize(
    ("value", "version", "lxc", "expected"),
    [
        ("198.18.0.2/24", 4, False, "198.18.0.2/24"),
        ("198.18.0.2/255.255.255.0", 4, False, "198.18.0.2/24"),
        ("198.18.0.2", 4, True, "198.18.0.2/24"),
        ("198.18.0.2/16 198.18.255.255", 4, True, "198.18.0.2/16"),
        ("fd00::1/64", 6, False, "fd00::1/64"),
        ("fd00::1", 6, True, "fd00::1/64"),
    ],
)
def test_ip_interfaces(value: str, version: int, lxc: bool, expected: str) -> None:
    assert validate.ip_interface(value, version, lxc=lxc) == expected


@pytest.mark.parametrize(
    ("value", "version", "lxc"),
    [
        ("198.18.0.2", 4, False),  # a prefix is wanted outside LXC's config
        ("198.18.0.300/24", 4, False),
        ("198.18.0.2/33", 4, True),
        ("fd00::1/64", 4, True),
        ("198.18.0.2/24", 6, True),
        ("198.18.0.2/24 198.18.0.999", 4, True),
        ("198.18.0.2/24 198.18.0.255", 4, False),
        ("fd00::1/64 fd00::ff", 6, True),
        ("", 4, True),
    ],
)
def test_ip_interfaces_refused(value: str, version: int, lxc: bool) -> None:
    with pytest.raises(UsageError) as info:
        validate.ip_interface(value, version, lxc=lxc)
    assert str(info.value) == f"{value!r} is not an IPv{version} address with prefix"


def test_ip_gateways() -> None:
    assert validate.ip_gateway("auto") == "auto"
    assert validate.ip_gateway("198.18.0.1") == "198.18.0.1"
    assert validate.ip_gateway("fd00:0::1", 6) == "fd00::1"
    for value, version in (("fd00::1", 4), ("198.18.0.1", 6), ("gw", 4), ("198.18.0.1/24", 4)):
        with pytest.raises(UsageError) as info:
            validate.ip_gateway(value, version)
        assert str(info.value) == f"{value!r} is not an IPv{version} address or 'auto'"


# ---------------------------------------------------------------- durations and seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5), ("10s", 10.0), ("1.5m", 90.0), ("5min", 300.0), ("2h", 7200.0),
        ("1d", 86400.0), (" 3 s ", 3.0), ("0s", 0.0), ("2.s", 2.0),
        (0, 0.0), (7, 7.0), (1.25, 1.25),
    ],
)
def test_duration(value: object, seconds: float) -> None:
    result = validate.duration(value)
    assert isinstance(result, float)
    assert result == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    ["10 parsecs", "-1s", "", "10", "1h30m", ".5s", "10S", "s", "1.2.3s", "9" * 400 + "d",
     True, False, -1, -0.5, None, [1], float("nan"), float("inf")],
)
def test_duration_rejects(value: object) -> None:
    with pytest.raises(UsageError, match=re.escape(f"bad duration {value!r}")):
        validate.duration(value)


@pytest.mark.parametrize("value", [0.0, 1.5, 1e9])
def test_seconds(value: float) -> None:
    assert validate.seconds(value) == value


@pytest.mark.parametrize("value", [-1.0, float("nan")])
def test_seconds_rejects(value: float) -> None:
    with pytest.raises(UsageError, match="^grace must be a number of seconds, not negative$"):
        validate.seconds(value, "grace")


def test_importing_it_loads_nothing_slow() -> None:
    """Every CLI call imports it: re, ipaddress, signal and enum stay out."""
    code = ("import sys; before = set(sys.modules); import lxcflow.validate; "
            "print(sorted(set(sys.modules) - before))")
    # -S as the CLI's launcher runs it; the checkout's package from the cwd.
    out = subprocess.run([sys.executable, "-S", "-c", code], check=True, capture_output=True,
                         text=True, cwd=REPO).stdout
    loaded = set(ast.literal_eval(out))
    assert loaded >= {"lxcflow.validate"}, loaded
    assert loaded.isdisjoint({"re", "ipaddress", "signal", "enum", "typing"}), loaded
