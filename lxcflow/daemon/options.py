"""What ``lxcflow daemon`` was asked for: one value handed to the composition root.

Stdlib only: the CLI builds it (and so checks it) before it imports trio.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lxcflow.errors import UsageError
from lxcflow.paths import Paths


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

    def __post_init__(self) -> None:
        if self.journal_max_events < 1 or not self.journal_max_age_s > 0:
            raise UsageError("journal limits must be positive")
        if not self.hook_timeout > 0:
            raise UsageError("--hook-timeout must be positive")
        if not self.restart_budget > 0:
            raise UsageError("--restart-budget must be positive")
