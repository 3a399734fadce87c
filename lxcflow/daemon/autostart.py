"""Autostart, as lxc-autostart 5.0 does it: the containers whose config says
``lxc.start.auto = 1``, chosen by ``lxc.group``, started in ascending
``lxc.start.order`` (ties by name) with ``lxc.start.delay`` seconds after
each, stopped, killed or rebooted in the reverse order.

The daemon runs the start once per host boot (the kernel's boot id is kept
in ``<lxcpath>/.autostart-boot``): the shipped unit brings containers up at
boot, and restarting the daemon never undoes a user's stop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
import trio

from lxcflow.config import ContainerConfig, load_config
from lxcflow.daemon.supervisor import Supervisor
from lxcflow.errors import LxcflowError
from lxcflow.states import State

log = structlog.get_logger("lxcflow.autostart")

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
BOOT_FILE = ".autostart-boot"
ACTIONS = ("start", "stop", "kill", "reboot", "list")


@dataclass(frozen=True, slots=True)
class Entry:
    """One container of an autostart, as its config places it."""

    name: str
    order: int
    delay: int
    groups: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "order": self.order, "delay": self.delay,
                "groups": list(self.groups)}


def select(configs: Mapping[str, ContainerConfig], *, groups: Sequence[str] = (),
           every: bool = False) -> list[Entry]:
    """The containers with ``lxc.start.auto``: those in no group, or (with
    ``groups``) those in any of them, or (``every``) all; in start order."""
    chosen = []
    for name, config in configs.items():
        if not config.start_auto:
            continue
        if every or (set(config.groups) & set(groups) if groups else not config.groups):
            chosen.append(Entry(name, config.start_order, config.start_delay, config.groups))
    return sorted(chosen, key=lambda e: (e.order, e.name))


def configs(supervisor: Supervisor) -> tuple[dict[str, ContainerConfig], dict[str, str]]:
    """Every created container's config, and why the unreadable ones are not."""
    found: dict[str, ContainerConfig] = {}
    broken: dict[str, str] = {}
    for name, c in sorted(supervisor.containers.items()):
        if c.ephemeral:
            continue
        try:
            found[name] = load_config(supervisor.paths.config_file(name))
        except LxcflowError as e:
            broken[name] = str(e)
    return found, broken


#: a user's stop of one container, polite or (True) a kill: the composition's,
#: so that restart policies hear of it
Stop = Callable[[str, bool], Awaitable[None]]


async def run(supervisor: Supervisor, action: str, entries: Sequence[Entry], *,
              stop: Stop, reboot_within: float) -> list[dict[str, object]]:
    """Do ``action`` to ``entries``; what became of each, in the order done.

    A failure of one container does not stop the rest.
    """
    results: list[dict[str, object]] = []
    ordered = list(entries) if action == "start" else list(reversed(entries))
    for entry in ordered:
        c = supervisor.containers.get(entry.name)
        result = "done"
        try:
            if c is None:
                result = "gone"
            elif action == "start":
                if c.state is State.STOPPED:
                    await supervisor.start(entry.name)
                else:
                    result = f"already {c.state.value}"
            elif c.state is State.STOPPED:
                result = "not running"
            elif action in ("stop", "kill"):
                await stop(entry.name, action == "kill")
            else:
                await supervisor.reboot(entry.name, within=reboot_within)
        except LxcflowError as e:
            result = f"failed: {e}"
        log.info("autostart", container=entry.name, action=action, result=result)
        results.append({**entry.to_dict(), "result": result})
        if action == "start" and result == "done" and entry.delay:
            await trio.sleep(entry.delay)  # what the config asks: time to come up
    return results


async def at_boot(supervisor: Supervisor, stop: Stop, boot_id: Path = BOOT_ID) -> None:
    """The start of the default selection, once per boot of the host."""
    await supervisor.ready.wait()  # what ran before is adopted, not started twice
    marker = supervisor.paths.lxcpath / BOOT_FILE
    try:
        this_boot = boot_id.read_text().strip()
    except OSError:
        return  # no boot id to tell boots apart: never guess
    try:
        if marker.read_text().strip() == this_boot:
            return
    except OSError:
        pass
    # Written first: a daemon that dies half-way must not start again what a
    # user stopped since.
    marker.write_text(this_boot + "\n")
    found, broken = configs(supervisor)
    for name, error in broken.items():
        log.error("autostart_config_unreadable", container=name, error=error)
    await run(supervisor, "start", select(found), stop=stop, reboot_within=60.0)
