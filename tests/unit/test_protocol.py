"""Wire format and error round trips between daemon and client."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lxcflow import protocol
from lxcflow.errors import ConfigError, NotFound, ProtocolError, UsageError, WrongState, from_dict


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{nope", "malformed request"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"args": {}}', "needs a string 'op'"),
        (b'{"op": "ls", "args": [1]}', "needs a string 'op' and an object 'args'"),
        (b"\xff\xfe", "malformed request"),
    ],
)
def test_malformed_requests_are_protocol_errors(line: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        protocol.decode_request(line)


def test_request_round_trip() -> None:
    line = protocol.encode({"op": "info", "args": {"name": "web"}})
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert protocol.decode_request(line.rstrip()) == ("info", {"name": "web"})


@pytest.mark.parametrize(
    ("err", "code"),
    [
        (NotFound("container 'x' does not exist", container="x"), 1),
        (WrongState("container 'x' is RUNNING", state="RUNNING"), 1),
        (UsageError("invalid signal 'X'"), 2),
        (ConfigError("unknown key 'lxc.x'", file="/c", line=4), 1),
    ],
)
def test_errors_survive_the_wire(err: Exception, code: int) -> None:
    wire = protocol.error(err)["error"]  # type: ignore[arg-type]
    back = from_dict(wire)
    assert type(back) is type(err)
    assert str(back) == str(err)
    assert back.exit_code == code
    assert back.details == err.details  # type: ignore[attr-defined]


def test_config_error_message_has_file_and_line() -> None:
    assert str(ConfigError("bad", file="/etc/c", line=7)) == "/etc/c:7: bad"
    assert str(ConfigError("cannot read", file="/etc/c")) == "/etc/c: cannot read"


@pytest.mark.parametrize(
    "value",
    [
        {"op": "info", "args": {"name": "web"}},
        {"ok": True, "result": [1, -2, 2**70, 0.1, 1e300, None, True, False, "", "é☃\n\"\\"]},
        {"nested": {"a": [{"b": []}, {}]}},
    ],
)
def test_the_codec_reads_back_what_it_writes_as_json_would(value: dict[str, object]) -> None:
    line = protocol.encode(value)
    assert line == json.dumps(value, separators=(",", ":")).encode() + b"\n"
    assert protocol.decode(line) == value
    assert protocol.decode(b" \t" + line + b"\r\n") == value


@pytest.mark.parametrize("line", [b"", b"   ", b"{} x", b"[1,", b'{"a": 1', b"\xff", b"nope"])
def test_the_codec_refuses_anything_but_one_json_value(line: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - decode promises ValueError, nothing finer
        protocol.decode(line)


def test_a_value_json_cannot_carry_fails_alone() -> None:
    message: dict[str, object] = {"a": {"x": 1}, "b": object()}
    with pytest.raises(TypeError, match="not JSON serializable"):
        protocol.encode(message)
    # The failed attempt leaves no trace: the same dict again is no "circular reference".
    del message["b"]
    assert protocol.decode(protocol.encode(message)) == {"a": {"x": 1}}
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        protocol.encode({"loop": loop})


def test_without_the_accelerator_the_json_package_codes_the_same() -> None:
    code = (
        "import sys; sys.modules['_json'] = None; "  # None in sys.modules: ImportError
        f"sys.path.insert(0, {str(Path(__file__).parents[2])!r}); "
        "from lxcflow import protocol; "
        "line = protocol.encode({'a': ['\\u00e9', 1.5, None]}); "
        "print(line.decode(), end=''); print(protocol.decode(line)); "
        "protocol.decode(b'{} x')"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.splitlines() == ['{"a":["\\u00e9",1.5,null]}', "{'a': ['é', 1.5, None]}"]
    assert "JSONDecodeError: Extra data" in r.stderr
