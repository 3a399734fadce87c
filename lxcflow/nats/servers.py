"""Where NATS is: ``--nats`` / ``LXCFLOW_NATS`` URLs, checked before the daemon starts.

Stdlib only (the CLI checks these before it imports trio). One URL or
several, comma-separated (the servers of a cluster, tried in order);
``nats://`` plain, ``tls://`` encrypted; ``user:password@`` or ``token@``
as NATS takes them; port 4222 if none is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

DEFAULT_PORT = 4222
SCHEMES = ("nats", "tls")


@dataclass(frozen=True, slots=True)
class Server:
    """One server to dial, with the credentials its URL carries."""

    host: str
    port: int = DEFAULT_PORT
    tls: bool = False
    user: str | None = None
    password: str | None = None
    token: str | None = None

    def __str__(self) -> str:
        """The URL without its secrets (what logs and ``info`` show)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'tls' if self.tls else 'nats'}://{host}:{self.port}"


def parse_servers(text: str) -> list[Server]:
    """``nats://HOST[:PORT][,...]`` as servers.

    Raises:
        ValueError: saying which URL is wrong and why.
    """
    servers = []
    for url in (part.strip() for part in text.split(",")):
        if not url:
            raise ValueError(f"empty URL in {text!r}")
        servers.append(parse_server(url))
    return servers


def parse_server(url: str) -> Server:
    """One ``nats://`` or ``tls://`` URL.

    Raises:
        ValueError: what is wrong with it.
    """
    if "://" not in url:
        raise ValueError(f"{url!r} is not a URL: give nats://HOST[:PORT]")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ValueError(f"{url!r}: {e}") from None
    if parts.scheme not in SCHEMES:
        raise ValueError(f"{url!r}: the scheme must be nats:// or tls://")
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{url!r}: a NATS URL has no path, query or fragment")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    token = None
    if user is not None and password is None:
        user, token = None, user  # nats://TOKEN@host
    return Server(parts.hostname, port or DEFAULT_PORT, parts.scheme == "tls", user, password,
                  token)
