"""Hooks on real containers: LXC's per-container hooks and global event hooks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from lxcflow.cgroups import open_manager
from lxcflow.daemon.supervisor import Supervisor
from lxcflow.daemon.watch import FileWatcher
from lxcflow.errors import StartFailed
from lxcflow.states import State
from tests.integration.conftest import Env, needs_root

pytestmark = needs_root


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@pytest.fixture
async def sup(lxc: Env, shim_binary: Path) -> AsyncIterator[Supervisor]:
    hooks_dir = lxc.base / "hooks"
    hooks_dir.mkdir()
    s = Supervisor(lxc.paths, open_manager(parent=lxc.paths.cgroup_parent),
                   shim_binary=shim_binary, hooks_dir=hooks_dir, hook_timeout=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(s.run)
        yield s
        nursery.cancel_scope.cancel()


async def stopped(sup: Supervisor, name: str) -> None:
    c = sup.get(name)
    with trio.fail_after(10):
        await c.wait_until(lambda: c.state is State.STOPPED)


async def test_lxc_host_hooks_run_in_order_with_lxcs_environment(
    sup: Supervisor, lxc: Env
) -> None:
    log = lxc.base / "hooks.log"
    hook = script(lxc.base / "record",
                  f'echo "$LXC_HOOK_TYPE $LXC_NAME $* $LXC_CONFIG_FILE" >> {log}\n')
    config = lxc.config("".join(f"lxc.hook.{t} = {hook}\n"
                                for t in ("pre-start", "start-host", "post-stop", "destroy")))
    await sup.create("web", str(config))
    await sup.start("web", command=["true"])
    await stopped(sup, "web")
    await sup.destroy("web")
    copied = lxc.paths.config_file("web")
    assert log.read_text().splitlines() == [
        f"{t} web web lxc {t} {copied}" for t in ("pre-start", "start-host", "post-stop",
                                                  "destroy")
    ]


async def test_failing_pre_start_aborts_and_leaves_nothing(sup: Supervisor, lxc: Env) -> None:
    hook = script(lxc.base / "no", "echo 'not today' >&2; exit 1\n")
    config = lxc.config(f"lxc.hook.pre-start = {hook}\n")
    await sup.create("web", str(config))
    with sup.bus.subscribe() as sub:
        with pytest.raises(StartFailed, match="lxc.hook.pre-start failed"):
            await sup.start("web", command=["sleep", "1000"])
        seen = [sub.receive_nowait() for _ in range(3)]
    assert [e.to_state for e in seen if e] == [State.STARTING, State.ABORTING, State.STOPPED]
    assert sup.cgroups.names() == []


async def test_failing_start_host_stops_the_started_container(
    sup: Supervisor, lxc: Env
) -> None:
    hook = script(lxc.base / "no", "exit 1\n")
    await sup.create("web", str(lxc.config(f"lxc.hook.start-host = {hook}\n")))
    with pytest.raises(StartFailed, match="lxc.hook.start-host failed"):
        await sup.start("web", command=["sleep", "1000"])
    assert sup.get("web").state is State.STOPPED
    assert sup.cgroups.names() == []


async def test_lxc_hook_stop_is_refused(sup: Supervisor, lxc: Env) -> None:
    await sup.create("web", str(lxc.config("lxc.hook.stop = /bin/true\n")))
    with pytest.raises(StartFailed, match="lxc.hook.stop is not supported"):
        await sup.start("web", command=["sleep", "1000"])


async def test_global_hooks_see_every_transition_and_a_hanging_one_is_killed(
    sup: Supervisor, lxc: Env, host_root_config: Path
) -> None:
    assert sup.hooks_dir is not None
    seen = lxc.base / "seen"
    script(sup.hooks_dir / "10-hang", "sleep 1000\n")  # killed after hook_timeout (1 s)
    script(sup.hooks_dir / "20-record", f"cat >> {seen}\n")
    seen.touch()
    await sup.create("web", str(host_root_config))
    async with trio.open_nursery() as nursery:
        watcher = FileWatcher()
        nursery.start_soon(watcher.run)
        wrote = trio.Semaphore(0, max_value=1000)
        watcher.add(seen, lambda: wrote.release())
        await sup.start("web", command=["sh", "-c", "exit 4"])
        await stopped(sup, "web")
        # The supervisor did not wait for the hooks: the container is already
        # STOPPED while the hanging hook still holds up the queue.
        with trio.fail_after(20):
            while len(seen.read_text().splitlines()) < 4:
                await wrote.acquire()
        nursery.cancel_scope.cancel()
    events = [json.loads(line) for line in seen.read_text().splitlines()]
    assert [(e["from"], e["to"]) for e in events] == [
        ("STOPPED", "STARTING"), ("STARTING", "RUNNING"), ("RUNNING", "STOPPING"),
        ("STOPPING", "STOPPED"),
    ]
    assert events[-1]["exit_code"] == 4
    # And it keeps supervising: another container starts and stops normally.
    await sup.start("web", command=["true"])
    await stopped(sup, "web")
