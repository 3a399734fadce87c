"""The control socket's wire format: JSON lines, shared by daemon and client.

A request is one line ``{"op": NAME, "args": {...}}``, optionally carrying
file descriptors (SCM_RIGHTS) in the same sendmsg. A reply is one line
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": {type, message,
details}}``; a reply with ``"more": true`` is followed by another (execute
replies once RUNNING and again when the command ends).

Standard library only: the CLI imports this. It codes JSON with the C
accelerator ``_json`` directly, as the json package does underneath: the
package itself imports ``re``, about 14 ms of every CLI call.
"""

from __future__ import annotations

from lxcflow.errors import LxcflowError, ProtocolError

# The CLI imports this module on every call: typing costs milliseconds there.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: a request line longer than this is refused (the daemon stays up)
MAX_LINE = 64 * 1024
#: at most this many file descriptors ride with one request
MAX_FDS = 3


try:
    import _json
except ImportError:  # an interpreter without the accelerator: the json package's own code
    import json

    def _dumps(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"))

    def _loads(text: str) -> Any:
        return json.loads(text)

else:

    class _Decoding:
        """What ``_json.make_scanner`` reads its settings from: json.loads's defaults."""

        strict = True
        object_hook = None
        object_pairs_hook = None
        parse_float = float
        parse_int = int
        parse_constant = float  # NaN, Infinity, -Infinity

    # typeshed wants a scanner as the context; the C code reads only the attributes.
    _scan = _json.make_scanner(_Decoding())  # type: ignore[arg-type]

    def _not_serializable(value: object) -> Any:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

    def _dumps(value: Any) -> str:
        # Arguments as json.JSONEncoder passes them: a circular check, ensure_ascii,
        # no indent, compact separators, keys unsorted, none skipped, NaN allowed.
        # A new encoder each time: one that failed halfway keeps stale circular-check
        # marks, which a later message could trip over.
        encoder = _json.make_encoder(
            {}, _not_serializable, _json.encode_basestring_ascii, None, ":", ",", False, False,
            True,
        )
        return "".join(encoder(value, 0))

    def _loads(text: str) -> Any:
        text = text.strip(" \t\r\n")  # JSON's whitespace, which json.loads allows around
        try:
            value, end = _scan(text, 0)
        except StopIteration:
            raise ValueError("Expecting value: char 0") from None
        if end != len(text):
            raise ValueError(f"Extra data: char {end}")
        return value


def encode(message: dict[str, Any]) -> bytes:
    """One message as a line of compact JSON."""
    return _dumps(message).encode() + b"\n"


def decode(line: bytes) -> Any:
    """One line's JSON value.

    Raises:
        ValueError: not UTF-8, or not one JSON value.
    """
    return _loads(line.decode())


def decode_request(line: bytes) -> tuple[str, dict[str, Any]]:
    """Parse and shape-check one request line.

    Raises:
        ProtocolError: not JSON, not an object, no op, args not an object.
    """
    try:
        message = decode(line)
    except ValueError as e:
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
