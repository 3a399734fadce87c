"""Rules on real containers: restart policies, freeze on idle, ordering, isolation."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from lxcflow.cgroups import open_manager
from lxcflow.daemon import views
from lxcflow.daemon.engine import RuleEngine
from lxcflow.daemon.supervisor import Supervisor
from lxcflow.errors import WrongState
from lxcflow.states import Actor, Cause, Event, State
from tests.integration.conftest import Env, needs_root
from tests.integration.rules_rig import Rig, collect, loaded, until

pytestmark = needs_root

S = State


async def test_crashing_container_restarted_with_backoff_then_given_up(rig: Rig) -> None:
    rig.write("""
[[rule]]
name = "crash"
containers = "web"
restart = "on-failure"
max_restarts = 3
window = "1m"
backoff = { initial = "100ms", factor = 2.0, max = "1s" }
""")
    rig.engine.reload()
    with rig.sup.bus.subscribe() as sub:
        await rig.sup.start("web", command=["sh", "-c", "exit 3"])

        def gave_up(events: list[Event]) -> bool:
            return any(e.is_notice for e in events)

        events = await collect(sub, gave_up)
        # Nothing more after giving up: wait longer than the next delay would be.
        with trio.move_on_after(1.0):
            events.append(await sub.receive())
    stops = [e for e in events if e.to_state is S.STOPPED and not e.is_notice]
    starts = [e for e in events if e.to_state is S.STARTING]
    assert len(starts) == 4  # the user's, then 3 by the rule
    assert starts[0].cause is Cause.COMMAND
    assert [e.cause_text for e in starts[1:]] == ["rule:crash"] * 3
    assert all(e.exit_code == 3 for e in stops)
    delays = [(start.time_ns - stop.time_ns) / 1e9
              for stop, start in zip(stops[:-1], starts[1:], strict=True)]
    for delay, wanted in zip(delays, (0.1, 0.2, 0.4), strict=True):
        assert wanted <= delay < wanted + 0.5, delays
    notice = events[-1] if events[-1].is_notice else next(e for e in events if e.is_notice)
    assert (notice.notice, notice.detail) == ("restart_given_up", "3 restarts within 60 s")
    assert notice.cause_text == "rule:crash"
    assert rig.sup.get("web").state is S.STOPPED
    assert "gave up" in rig.engine.describe()["rules"][0]["state"]["web"]


async def test_on_failure_leaves_a_clean_exit_and_always_does_not(rig: Rig) -> None:
    await loaded(rig, """
[[rule]]
name = "web-fail"
containers = "web"
restart = "on-failure"
backoff = { initial = "0s" }

[[rule]]
name = "idle-always"
containers = "idle"
restart = "always"
max_restarts = 2
backoff = { initial = "0s" }
""", "web-fail", "idle-always")
    with rig.sup.bus.subscribe() as sub:
        await rig.sup.start("web", command=["true"])
        await rig.sup.start("idle", command=["true"])

        def idle_gave_up(events: list[Event]) -> bool:
            return any(e.is_notice and e.container == "idle" for e in events)

        events = await collect(sub, idle_gave_up)
    web_starts = [e for e in events if e.container == "web" and e.to_state is S.STARTING]
    idle_starts = [e for e in events if e.container == "idle" and e.to_state is S.STARTING]
    assert len(web_starts) == 1  # exit 0 is not a failure
    assert len(idle_starts) == 3  # "always": exit 0 too, until max_restarts


async def test_a_users_stop_is_final_and_cancels_a_pending_restart(rig: Rig) -> None:
    await loaded(rig, """
[[rule]]
name = "keep-up"
containers = "web"
restart = "always"
backoff = { initial = "1s" }
""", "keep-up")
    c = rig.sup.get("web")
    # A user's stop of a running container: never undone.
    await rig.sup.start("web", command=["sleep", "1000"])
    with rig.sup.bus.subscribe() as sub:
        await rig.user_stop("web", grace=0, kill=True)
        with trio.move_on_after(1.5):
            while True:
                event = await sub.receive()
                assert event.to_state is not S.STARTING, event
    assert c.state is S.STOPPED
    # A death on its own schedules a restart in 1 s; a user's stop meanwhile
    # cancels it, and succeeds although the container is already STOPPED.
    await rig.sup.start("web", command=["sh", "-c", "exit 1"])
    await until(rig, lambda: "web" in rig.engine._pending)
    await rig.user_stop("web")
    with rig.sup.bus.subscribe() as sub:
        with trio.move_on_after(1.5):
            while True:
                event = await sub.receive()
                assert event.to_state is not S.STARTING, event
    assert c.state is S.STOPPED


async def test_kill_is_a_signal_not_a_stop(rig: Rig) -> None:
    await loaded(rig, """
[[rule]]
name = "keep-up"
containers = "web"
restart = "on-failure"
backoff = { initial = "0s" }
""", "keep-up")
    c = await rig.sup.start("web", command=["sleep", "1000"])
    with rig.sup.bus.subscribe() as sub:
        await rig.sup.kill("web", 9)
        events = await collect(sub, lambda ev: any(e.to_state is S.RUNNING for e in ev))
    assert events[-1].cause is Cause.KERNEL  # observed RUNNING again
    assert [e.cause_text for e in events if e.to_state is S.STARTING] == ["rule:keep-up"]
    assert c.state is S.RUNNING


async def test_idle_container_frozen_busy_one_not(rig: Rig) -> None:
    await loaded(rig, """
[[rule]]
name = "idle-freeze"
containers_regex = "^(idle|busy)$"
sample = { cpu_below = "5%", for = "600ms", every = "100ms" }
actions = ["freeze"]
""", "idle-freeze")
    idle = await rig.sup.start("idle", command=["sleep", "1000"])
    busy = await rig.sup.start("busy", command=["sh", "-c", "while :; do :; done"])
    with trio.fail_after(10):
        await idle.wait_until(lambda: idle.state is S.FROZEN)
    assert idle.frozen_by == "rule:idle-freeze"
    await trio.sleep(1.0)  # several idle windows' worth of busy samples
    assert busy.state is S.RUNNING
    info = views.info(rig.sup.get("idle"))
    assert info["frozen_by"] == "rule:idle-freeze"
    assert info["frozen_total_ns"] > 0
    # A rule may thaw a rule's freeze, not a user's.
    await rig.sup.unfreeze("idle", by=Actor.of_rule("someone"))
    await rig.sup.freeze("busy")
    with pytest.raises(WrongState, match="frozen by a user"):
        await rig.sup.unfreeze("busy", by=Actor.of_rule("someone"))
    await rig.sup.unfreeze("busy")


async def test_b_started_once_a_is_running(rig: Rig) -> None:
    await loaded(rig, """
[[rule]]
name = "app-after-db"
containers = "db"
on = "RUNNING"
actions = [{ start = "app" }]
""", "app-after-db")
    with rig.sup.bus.subscribe() as sub:
        await rig.sup.start("db", command=["sleep", "1000"])
        events = await collect(sub, lambda ev: any(
            e.container == "app" and e.to_state is S.RUNNING for e in ev))
    db_running = next(e for e in events if e.container == "db" and e.to_state is S.RUNNING)
    app_starting = next(e for e in events if e.container == "app" and e.to_state is S.STARTING)
    assert app_starting.id > db_running.id
    assert app_starting.cause_text == "rule:app-after-db"


async def test_failing_rule_and_hanging_hook_do_not_stop_the_daemon(rig: Rig) -> None:
    hang = rig.rules / "hang"
    hang.write_text("#!/bin/sh\nexec sleep 1000\n")
    hang.chmod(0o755)
    await loaded(rig, """
[[rule]]
name = "broken"
containers = "db"
on = "RUNNING"
actions = [{ start = "ghost" }]

[[rule]]
name = "hangs"
containers = "db"
on = "RUNNING"
actions = [{ hook = "hang", timeout = "300ms" }]

[[rule]]
name = "still-works"
containers = "db"
on = "RUNNING"
actions = [{ priority = 512 }, { log = "db is up" }]
""", "broken", "hangs", "still-works")
    with rig.sup.bus.subscribe() as sub:
        await rig.sup.start("db", command=["sleep", "1000"])
        events = await collect(sub, lambda ev: sum(e.is_notice for e in ev) >= 3)
    details = sorted((e.notice, e.detail) for e in events if e.is_notice)
    assert details == [("hook", "hang timed out"), ("log", "db is up"), ("priority", "512")]
    assert rig.sup.priority("db") == 512
    # The daemon goes on: the same rules fire again on the next start.
    await rig.sup.stop("db", kill=True)
    with rig.sup.bus.subscribe() as sub:
        await rig.sup.start("db", command=["sleep", "1000"])
        await collect(sub, lambda ev: sum(e.is_notice for e in ev) >= 3)


async def test_edits_are_picked_up_and_a_broken_edit_keeps_the_last_good(rig: Rig) -> None:
    path = rig.write('[[rule]]\nname = "a"\non = "RUNNING"\nactions = ["freeze"]\n')
    await until(rig, lambda: rig.engine.rule("a") is not None)
    path.write_text('[[rule]]\nname = "b"\non = "RUNNING"\nactions = ["frezze"]\n')
    await until(rig, lambda: rig.engine.describe()["errors"] != [])
    assert rig.engine.rule("a") is not None
    assert rig.engine.rule("b") is None
    assert rig.engine.describe()["errors"][0]["error"].endswith(
        "test.toml:4: unknown action 'frezze' (actions: start, stop, restart, freeze, "
        "unfreeze, kill, priority, hook, log)")
    path.write_text('[[rule]]\nname = "b"\non = "RUNNING"\nactions = ["freeze"]\n')
    await until(rig, lambda: rig.engine.rule("b") is not None)
    assert rig.engine.rule("a") is None
    assert rig.engine.describe()["errors"] == []
    path.unlink()
    await until(rig, lambda: rig.engine.rules == [])


async def test_schedule_fires_every_interval(rig: Rig) -> None:
    await loaded(rig, """
[[rule]]
name = "tick"
containers = "web"
every = "100ms"
condition = { state = "RUNNING" }
actions = [{ kill = "USR1" }]
""", "tick")
    await rig.sup.start("web", command=["sh", "-c", "trap 'echo' USR1; while :; do sleep 1; done"])
    with rig.sup.bus.subscribe() as sub:
        events = await collect(sub, lambda ev: len(ev) >= 3, limit=5)
    assert all(e.is_notice and e.cause_text == "rule:tick" for e in events)
    assert all(e.notice == "kill" and e.detail and e.detail.startswith("signal 10 to")
               for e in events)



async def test_the_example_rules_on_real_containers(lxc: Env, shim_binary: Path) -> None:
    """rules/ as shipped: web-on-failure gives up after 5 restarts with its
    backoff, report-crash logs and runs its hook, app-after-db orders."""
    examples = Path(__file__).parents[2] / "rules"
    sup = Supervisor(lxc.paths, open_manager(parent=lxc.paths.cgroup_parent),
                     shim_binary=shim_binary)
    engine = RuleEngine(sup, examples, hook_timeout=5.0)
    config = lxc.config("lxc.uts.name = ex\nlxc.init.cmd = sleep 1000\n")
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        await nursery.start(sup.run)
        for name in ("web-1", "db", "app"):
            await sup.create(name, str(config))
        with sup.bus.subscribe() as sub:
            await sup.start("db")
            await sup.start("web-1", command=["sh", "-c", "exit 4"])
            events = await collect(sub, lambda ev: any(
                e.notice == "restart_given_up" for e in ev))
            with trio.move_on_after(0.5):
                while True:  # the notices of the last crash
                    events.append(await sub.receive())
        web = [e for e in events if e.container == "web-1"]
        assert [e.cause_text for e in web if e.to_state is S.STARTING] == (
            ["command"] + ["rule:web-on-failure"] * 5)
        notices = [(e.notice, e.detail) for e in web if e.is_notice]
        assert notices.count(("log", "stopped on a failure")) == 6
        assert notices.count(("hook", "notify-crash ok")) == 6
        assert ("restart_given_up", "5 restarts within 60 s") in notices
        # backoff = { initial = "100ms", factor = 2.0, max = "10s", jitter = 0.1 }
        stops = [e for e in web if e.to_state is S.STOPPED and not e.is_notice]
        starts = [e for e in web if e.to_state is S.STARTING][1:]
        delays = [(b.time_ns - a.time_ns) / 1e9
                  for a, b in zip(stops[:-1], starts, strict=True)]
        for delay, base in zip(delays, (0.1, 0.2, 0.4, 0.8, 1.6), strict=True):
            assert base * 0.9 <= delay < base * 1.1 + 0.5, delays
        assert sup.get("app").state is S.RUNNING
        for name in ("db", "app"):
            await sup.stop(name, kill=True)
        nursery.cancel_scope.cancel()
