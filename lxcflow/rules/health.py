"""Health checks: what a probe is, and how its results add up to a verdict.

Docker's meanings throughout: a probe runs every ``every`` seconds while the
container is RUNNING, fails when it takes longer than ``timeout``; the
container is ``starting`` until a probe passes (``healthy``) or ``retries``
fail in a row (``unhealthy``); failures within ``start_period`` of the start
do not count until a probe has passed once. One pass makes an unhealthy
container healthy again.

The trigger that carries a probe is :class:`~lxcflow.rules.model.Health`.
Pure data and pure decisions (no I/O, no clock of its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from lxcflow.rules.model import Health

ProbeKind = Literal["exec", "tcp", "http"]
PROBE_KINDS: tuple[ProbeKind, ...] = ("exec", "tcp", "http")
HealthStatus = Literal["starting", "healthy", "unhealthy"]
#: the notices a health verdict publishes (``on = "HEALTHY"`` reacts to them)
VERDICTS: tuple[HealthStatus, ...] = ("healthy", "unhealthy")
#: what a probe's output is cut to, in the detail and ``info`` (Docker's 4 KiB)
MAX_OUTPUT = 4096


@dataclass(frozen=True, slots=True)
class Probe:
    """One way to ask a container whether it is well: a command inside it
    (``exec``), a connect to 127.0.0.1:``port`` in its network namespace
    (``tcp``), or a GET of ``path`` there (``http``)."""

    kind: ProbeKind
    command: tuple[str, ...] = ()
    port: int = 0
    path: str = "/"

    def __str__(self) -> str:
        if self.kind == "exec":
            return "exec " + " ".join(self.command)
        if self.kind == "tcp":
            return f"tcp {self.port}"
        return f"http {self.port}{self.path}"


@dataclass(slots=True)
class HealthRecord:
    """How one run of one container stands: made at RUNNING, fed every probe."""

    rule: str
    probe: str
    started: float  # the daemon's clock at the start of the run
    status: HealthStatus = "starting"
    failures: int = 0  # failures in a row that count
    last_ns: int | None = None  # wall clock of the last probe
    last_ok: bool | None = None
    last_output: str = ""

    def record(
        self, check: Health, ok: bool, output: str, now: float, time_ns: int
    ) -> HealthStatus | None:
        """Add one probe's result, taken at ``now`` under ``check``; the new
        status if it changed."""
        self.last_ns, self.last_ok, self.last_output = time_ns, ok, output[:MAX_OUTPUT]
        if ok:
            self.failures = 0
            new: HealthStatus = "healthy"
        else:
            grace = self.status == "starting" and now - self.started < check.start_period
            if not grace:
                self.failures += 1
            new = "unhealthy" if self.failures >= check.retries else self.status
        if new == self.status:
            return None
        self.status = new
        return new

    def to_dict(self) -> dict[str, object]:
        """What ``info --json`` shows."""
        return {"status": self.status, "rule": self.rule, "probe": self.probe,
                "failures": self.failures, "last_probe_ns": self.last_ns,
                "last_ok": self.last_ok, "last_output": self.last_output}
