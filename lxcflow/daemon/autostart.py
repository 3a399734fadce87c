"""Autostart, as lxc-autostart 5.0 does it: the containers whose config says
``lxc.start.auto = 1``, chosen by ``lxc.group``, started in ascending
``lxc.start.order`` (ties by name) with ``lxc.start.delay`` seconds after
each, stopped, killed or rebooted in the reverse order. Unlike
lxc-autostart, containers of one order that no delay separates are done
together (a mass operation), not one by one.

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
from lxcflow.daemon import batch
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

    Containers of one ``lxc.start.order`` are done together, as one mass
    operation (:mod:`~lxcflow.daemon.batch`), and the orders one after the
    other; a container's ``lxc.start.delay`` passes before any container
    after it starts. A failure of one container does not stop the rest.
    """
    results: dict[str, str] = {}

    async def act(name: str) -> None:
        c = supervisor.containers.get(name)
        result = "done"
        if c is None:
            result = "gone"
        elif action == "start":
            if c.state is State.STOPPED:
                await supervisor.start(name)
            else:
                result = f"already {c.state.value}"
        elif c.state is State.STOPPED:
            result = "not running"
        elif action in ("stop", "kill"):
            await stop(name, action == "kill")
        else:
            await supervisor.reboot(name, within=reboot_within)
        results[name] = result

    done: list[dict[str, object]] = []
    for wave in _waves(entries, reverse=action != "start"):
        failed = await batch.each([e.name for e in wave], act)
        for entry in wave:
            result = f"failed: {failed[entry.name]}" if entry.name in failed \
                else results[entry.name]
            log.info("autostart", container=entry.name, action=action, result=result)
            done.append({**entry.to_dict(), "result": result})
        delay = max((e.delay for e in wave if results.get(e.name) == "done"), default=0)
        if action == "start" and delay:
            await trio.sleep(delay)  # what the config asks: time to come up
    return done


def _waves(entries: Sequence[Entry], *, reverse: bool) -> list[list[Entry]]:
    """The entries in runs of one ``lxc.start.order``, in start order or its
    reverse. A container with a delay ends its run, so that, as with
    lxc-autostart, none after it starts before its delay has passed."""
    waves: list[list[Entry]] = []
    for entry in entries:
        last = waves[-1] if waves else None
        if last and last[-1].order == entry.order and not last[-1].delay:
            last.append(entry)
        else:
            waves.append([entry])
    return [list(reversed(w)) for w in reversed(waves)] if reverse else waves


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
