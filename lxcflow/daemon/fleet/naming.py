"""Where things live in NATS: subjects, keys and message ids, in one place."""

from __future__ import annotations

from lxcflow.nats.protocol import escape_token, unescape_token

EVENT_PREFIX = "lxcflow.event"


def event_subject(host: str, container: str) -> str:
    """``lxcflow.event.<host>.<container>`` (a ``.`` in the name escaped)."""
    return f"{EVENT_PREFIX}.{host}.{escape_token(container)}"


def host_events(host: str) -> str:
    """Every event subject of ``host``."""
    return f"{EVENT_PREFIX}.{host}.>"


ALL_EVENTS = f"{EVENT_PREFIX}.>"


def split_event_subject(subject: str) -> tuple[str, str] | None:
    """(host, container) of an event subject, or None if it is not one."""
    parts = subject.split(".")
    if len(parts) != 4 or ".".join(parts[:2]) != EVENT_PREFIX:
        return None
    return parts[2], unescape_token(parts[3])


def state_key(host: str, container: str) -> str:
    """A container's key in the bucket: ``<host>.<container>``."""
    return f"{host}.{escape_token(container)}"


def split_key(key: str) -> tuple[str, str | None]:
    """(host, container) of a key; a host's heartbeat key has no container."""
    host, _, container = key.partition(".")
    return host, unescape_token(container) if container else None


def message_id(host: str, epoch: str, event_id: int) -> str:
    """What JetStream de-duplicates on: the host, its journal's epoch, the event id."""
    return f"{host}:{epoch}:{event_id}"


def parse_message_id(text: str) -> tuple[str, str, int] | None:
    host, _, rest = text.partition(":")
    epoch, _, number = rest.partition(":")
    return (host, epoch, int(number)) if number.isdigit() else None
