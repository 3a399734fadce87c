"""The control socket's wire format: JSON lines, shared by daemon and client.

A request is one line ``{"op": NAME, "args": {...}}``, optionally carrying
file descriptors (SCM_RIGHTS) in the same sendmsg. A reply is one line
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": {type, message,
details}}``; a reply with ``"more": true`` is followed by another (execute
replies once RUNNING and again when the command ends).

Standard library only: the CLI imports this.
"""

from __future__ import annotations

import json

from lxcflow.errors import LxcflowError, ProtocolError

# The CLI imports this module on every call: typing costs milliseconds there.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: a request line longer than this is refused (the daemon stays up)
MAX_LINE = 64 * 1024
#: at most this many file descriptors ride with one request
MAX_FDS = 3


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode_request(line: bytes) -> tuple[str, dict[str, Any]]:
    """Parse and shape-check one request line.

    Raises:
        ProtocolError: not JSON, not an object, no op, args not an object.
    """
    try:
        message = json.loads(line)
    except (ValueError, UnicodeDecodeError) as e:
        raise ProtocolError(f"malformed request: {e}") from None
    if not isinstance(message, dict):
        raise ProtocolError("malformed request: not a JSON object")
    op = message.get("op")
    args = message.get("args", {})
    if not isinstance(op, str) or not isinstance(args, dict):
        raise ProtocolError("malformed request: needs a string 'op' and an object 'args'")
    return op, args


def ok(result: Any, *, more: bool = False) -> dict[str, Any]:
    reply: dict[str, Any] = {"ok": True, "result": result}
    if more:
        reply["more"] = True
    return reply


def error(err: LxcflowError) -> dict[str, Any]:
    return {"ok": False, "error": err.to_dict()}
