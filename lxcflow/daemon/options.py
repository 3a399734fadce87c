"""What ``lxcflow daemon`` was asked for: one value handed to the composition root.

Stdlib only: the CLI builds it (and so checks it) before it imports trio.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lxcflow.errors import UsageError
from lxcflow.nats.creds import Credentials, CredsError
from lxcflow.nats.creds import load as load_creds
from lxcflow.nats.servers import Server, parse_servers
from lxcflow.paths import Paths
from lxcflow.validate import host_name


@dataclass(frozen=True, slots=True)
class Address:
    """Where ``--metrics`` listens."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Address:
        """``HOST:PORT`` or ``[IPV6]:PORT``.

        Raises:
            UsageError: naming what is wrong.
        """
        host, sep, port = text.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(f"--metrics {text!r}: give HOST:PORT, like 127.0.0.1:9464")
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class FleetOptions:
    """``--nats`` and its company: where this host's journal and states go."""

    servers: tuple[Server, ...]
    host: str
    creds: Credentials | None = None
    stream: str = "LXCFLOW"
    bucket: str = "LXCFLOW"
    replicas: int = 1

    @classmethod
    def parse(cls, url: str, host: str, creds: str | None = None,
              replicas: int = 1) -> FleetOptions:
        """Checked (and the credentials read) before the daemon starts.

        Raises:
            UsageError: a URL that does not parse, a bad host name, replica
                count or credentials file.
        """
        try:
            servers = parse_servers(url)
        except ValueError as e:
            raise UsageError(f"--nats: {e}") from None
        try:
            host_name(host)
        except UsageError as e:
            raise UsageError(f"--host: {e}") from None
        if not 1 <= replicas <= 5:
            raise UsageError(f"--nats-replicas {replicas}: give 1 to 5 (JetStream's limit)")
        try:
            credentials = load_creds(Path(creds).absolute()) if creds else None
        except CredsError as e:
            raise UsageError(str(e)) from None
        return cls(tuple(servers), host, credentials, replicas=replicas)

    @property
    def url(self) -> str:
        """The servers, without secrets, as logs and ``info`` show them."""
        return ",".join(str(s) for s in self.servers)


@dataclass(frozen=True, slots=True)
class DaemonOptions:
    """Everything the daemon's parts are built from."""

    paths: Paths
    log_format: str = "console"  # "console" | "json"
    log_level: str = "info"
    journal_max_events: int = 100_000
    journal_max_age_s: float = 7 * 86400
    hooks_dir: Path = Path("/etc/lxcflow/hooks")
    hook_timeout: float = 30.0
    rules_dir: Path | None = None  # None: no rules
    restart_budget: float = 120.0  # restarts a minute across all containers
    ready_fd: int | None = None  # a spawning client's readiness pipe
    metrics: Address | None = None  # where /metrics is served (None: nowhere)
    fleet: FleetOptions | None = None  # NATS (None: a single host)

    def __post_init__(self) -> None:
        if self.journal_max_events < 1 or not self.journal_max_age_s > 0:
            raise UsageError("journal limits must be positive")
        if not self.hook_timeout > 0:
            raise UsageError("--hook-timeout must be positive")
        if not self.restart_budget > 0:
            raise UsageError("--restart-budget must be positive")
