"""Wire format and error round trips between daemon and client."""

from __future__ import annotations

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
