"""NATS's client protocol as bytes: what the server sends, what a client sends.

Pure (no I/O), so every frame and escape is tested without a server. The
protocol is line-based text (``INFO``, ``MSG``, ``HMSG``, ``PING``, ...)
with length-prefixed payloads; headers are HTTP-like, after a
``NATS/1.0[ STATUS[ DESCRIPTION]]`` line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

CRLF = b"\r\n"
HEADER_LINE = "NATS/1.0"
#: a line longer than this without CRLF is a broken peer, not a slow one
MAX_CONTROL_LINE = 64 * 1024


class ProtocolViolation(Exception):
    """The server sent something that is not NATS's protocol."""


@dataclass(frozen=True, slots=True)
class Msg:
    """A message delivered to a subscription (or a reply to a request)."""

    subject: str
    sid: int
    reply: str | None
    data: bytes
    headers: dict[str, str] = field(default_factory=dict)
    #: the header line's status: 100 (heartbeat, flow control), 404, 408, 503 (no responders)
    status: int | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class Info:
    """The server's ``INFO``: its identity, limits, the nonce to sign, and peers."""

    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Control:
    """``PING``, ``PONG``, ``+OK`` or ``-ERR`` (with the server's text)."""

    op: str
    text: str = ""


Frame = Msg | Info | Control


class Parser:
    """Splits what the server sends into frames; feed it bytes as they come."""

    def __init__(self) -> None:
        self._buf = bytearray()
        #: a MSG/HMSG header line whose payload is not all here yet
        self._waiting: tuple[list[bytes], int, int] | None = None

    def feed(self, data: bytes | bytearray) -> list[Frame]:
        """Every frame completed by ``data``, in order.

        Raises:
            ProtocolViolation: a line that is no NATS frame.
        """
        self._buf += data
        frames: list[Frame] = []
        while True:
            if self._waiting is not None:
                words, header_len, total = self._waiting
                if len(self._buf) < total + 2:
                    return frames
                payload = bytes(self._buf[:total])
                del self._buf[:total + 2]
                self._waiting = None
                frames.append(_message(words, payload, header_len))
                continue
            end = self._buf.find(CRLF)
            if end < 0:
                if len(self._buf) > MAX_CONTROL_LINE:
                    raise ProtocolViolation("a control line without an end")
                return frames
            line = bytes(self._buf[:end])
            del self._buf[:end + 2]
            frame = self._line(line)
            if frame is not None:
                frames.append(frame)

    def _line(self, line: bytes) -> Frame | None:
        op, _, rest = line.partition(b" ")
        op = op.upper()
        if op in (b"MSG", b"HMSG"):
            words = rest.split()
            try:
                if op == b"MSG":
                    header_len, total = 0, int(words[-1])
                else:
                    header_len, total = int(words[-2]), int(words[-1])
                if not 0 <= header_len <= total:
                    raise ValueError("sizes out of order")
            except (IndexError, ValueError):
                raise ProtocolViolation(f"bad {op.decode()} line: {line[:200]!r}") from None
            self._waiting = (words[:-2] if op == b"HMSG" else words[:-1], header_len, total)
            return None
        if op == b"INFO":
            try:
                return Info(json.loads(rest))
            except ValueError:
                raise ProtocolViolation(f"bad INFO: {line[:200]!r}") from None
        if op in (b"PING", b"PONG", b"+OK"):
            return Control(op.decode())
        if op == b"-ERR":
            return Control("-ERR", rest.decode(errors="replace").strip().strip("'"))
        if not line:
            return None
        raise ProtocolViolation(f"unknown frame {line[:200]!r}")


def _message(words: list[bytes], payload: bytes, header_len: int) -> Msg:
    try:
        if len(words) not in (2, 3):
            raise ValueError("wrong number of fields")
        subject, sid = words[0].decode(), int(words[1])
        reply = words[2].decode() if len(words) == 3 else None
    except ValueError:  # UnicodeDecodeError is one too
        raise ProtocolViolation(f"bad message line {b' '.join(words)[:200]!r}") from None
    if not header_len:
        return Msg(subject, sid, reply, payload)
    status, description, headers = parse_headers(payload[:header_len])
    return Msg(subject, sid, reply, payload[header_len:], headers, status, description)


def parse_headers(raw: bytes) -> tuple[int | None, str, dict[str, str]]:
    """A header block: its status, the status's description, and the headers."""
    lines = raw.decode(errors="replace").split("\r\n")
    first = lines[0]
    if not first.startswith(HEADER_LINE):
        raise ProtocolViolation(f"bad header line {first[:100]!r}")
    status_text = first[len(HEADER_LINE):].strip()
    status: int | None = None
    description = ""
    if status_text:
        code, _, description = status_text.partition(" ")
        status = int(code) if code.isdigit() else None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        key, sep, value = line.partition(":")
        if sep:
            headers[key.strip()] = value.strip()
    return status, description, headers


def encode_headers(headers: dict[str, str]) -> bytes:
    lines = [HEADER_LINE] + [f"{key}: {value}" for key, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def connect(options: dict[str, Any]) -> bytes:
    """``CONNECT`` with ``options``, then a ``PING`` whose ``PONG`` says it was taken."""
    return b"CONNECT " + json.dumps(options, separators=(",", ":")).encode() + CRLF + b"PING\r\n"


def publish(subject: str, data: bytes, *, reply: str | None = None,
            headers: dict[str, str] | None = None) -> bytes:
    """``PUB`` or, with headers, ``HPUB``."""
    target = f"{subject} {reply}" if reply else subject
    if not headers:
        return f"PUB {target} {len(data)}\r\n".encode() + data + CRLF
    block = encode_headers(headers)
    return (f"HPUB {target} {len(block)} {len(block) + len(data)}\r\n".encode()
            + block + data + CRLF)


def subscribe(subject: str, sid: int) -> bytes:
    return f"SUB {subject} {sid}\r\n".encode()


def unsubscribe(sid: int) -> bytes:
    return f"UNSUB {sid}\r\n".encode()


PING = b"PING\r\n"
PONG = b"PONG\r\n"


def escape_token(name: str) -> str:
    """``name`` as one subject token and key part: ``.`` splits subjects, so
    it (and ``=``, the escape) become ``=XX``; container names hold nothing else
    that needs it."""
    return "".join(f"={ord(ch):02X}" if ch in ".=" or not (ch.isascii() and (
        ch.isalnum() or ch in "-_")) else ch for ch in name)


def unescape_token(token: str) -> str:
    """The inverse of :func:`escape_token`."""
    out, i = [], 0
    while i < len(token):
        if token[i] == "=" and _is_hex(token[i + 1:i + 3]):
            out.append(chr(int(token[i + 1:i + 3], 16)))
            i += 3
        else:
            out.append(token[i])
            i += 1
    return "".join(out)


def _is_hex(text: str) -> bool:
    return len(text) == 2 and all(ch in "0123456789ABCDEFabcdef" for ch in text)
