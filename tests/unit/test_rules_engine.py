"""The rule engine's decisions, on trio's MockClock: backoff, give-up, the
host-wide budget, a user's stop, boot-time starts, sampling windows.

The supervisor here is a stand-in that records what the engine asks of it
and moves containers through the real state machine; real containers are
in tests/integration/test_rules.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import pytest
import trio
import trio.testing

from lxcflow.daemon.container import Container
from lxcflow.daemon.engine import RuleEngine
from lxcflow.daemon.events import EventBus
from lxcflow.daemon.journal import Journal
from lxcflow.daemon.supervisor import Supervisor, Usage
from lxcflow.errors import NotFound, WrongState
from lxcflow.rules.model import Backoff, RestartPolicy
from lxcflow.rules.restart import RestartBook, TokenBucket
from lxcflow.runstate import ExitStatus
from lxcflow.states import USER, Actor, Cause, Event, State

S = State


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


class FakeSupervisor:
    """Just enough of Supervisor for the engine: containers, events, calls."""

    def __init__(self, names: list[str], journal: Journal | None = None) -> None:
        self.bus = EventBus(journal)
        self.containers = {n: Container(n, self.bus) for n in names}
        self.ready = trio.Event()
        #: what a user's stop tells first, as the daemon's composition does
        self.stop_listeners: list[Any] = []
        self.cgroups: dict[str, FakeCgroup] = {}
        self.calls: list[tuple[float, str, str, str | None]] = []
        self.cpu: dict[str, float] = {}  # cores each container uses

    def state_of(self, name: str) -> State | None:
        c = self.containers.get(name)
        return c.state if c else None

    def get(self, name: str) -> Container:
        try:
            return self.containers[name]
        except KeyError:
            raise NotFound(f"container {name!r} does not exist") from None

    async def start(self, name: str, *, by: Actor = USER, again: bool = False) -> None:
        rule = by.rule
        c = self.get(name)
        self.calls.append((trio.current_time(), "start", name, rule))
        c.transition(S.STARTING, Cause.RULE if rule else Cause.COMMAND, rule=rule)
        c.transition(S.RUNNING, Cause.KERNEL)

    async def stop(self, name: str, *, grace: float = 60, kill: bool = False,
                   by: Actor = USER) -> None:
        rule = by.rule
        c = self.get(name)
        cancelled = rule is None and any([cancel(name) for cancel in self.stop_listeners])
        if c.state is S.STOPPED:
            if cancelled:
                return
            raise WrongState("not running")
        self.calls.append((trio.current_time(), "stop", name, rule))
        if c.state is not S.STOPPING:  # else dying on its own already: make sure
            c.transition(S.STOPPING, Cause.RULE if rule else Cause.COMMAND, rule=rule)
        c.transition(S.STOPPED, Cause.KERNEL, exit=ExitStatus(None, 9))

    async def freeze(self, name: str, *, by: Actor = USER) -> None:
        rule = by.rule
        c = self.get(name)
        self.calls.append((trio.current_time(), "freeze", name, rule))
        c.transition(S.FREEZING, Cause.RULE, rule=rule)
        c.transition(S.FROZEN, Cause.KERNEL)

    def usage(self, name: str) -> Usage | None:
        cg = self.cgroups.get(name)
        return Usage(cg.cpu_usage_ns(), cg.memory_bytes(), len(cg.pids())) if cg else None

    def die(self, name: str, code: int | None = 1, signal: int | None = None) -> None:
        c = self.containers[name]
        status = ExitStatus(code, signal)
        c.transition(S.STOPPING, Cause.KERNEL, exit=status)
        c.transition(S.STOPPED, Cause.KERNEL, exit=status)

    def starts(self, name: str) -> list[float]:
        return [t for t, op, n, _ in self.calls if op == "start" and n == name]


class FakeCgroup:
    """CPU time that grows at the rate the test sets, on the mock clock."""

    def __init__(self, sup: FakeSupervisor, name: str) -> None:
        self.sup, self.name = sup, name
        self.ns = 0.0
        self.at = trio.current_time()

    def cpu_usage_ns(self) -> int:
        now = trio.current_time()
        self.ns += (now - self.at) * self.sup.cpu.get(self.name, 0.0) * 1e9
        self.at = now
        return int(self.ns)

    def memory_bytes(self) -> int:
        return 1 << 20

    def pids(self) -> list[int]:
        return [1]


async def running(sup: FakeSupervisor, *names: str) -> None:
    for name in names:
        await sup.start(name)
    sup.calls.clear()


@pytest.fixture
def rig(tmp_path: Path) -> tuple[FakeSupervisor, RuleEngine, Path]:
    """A fake supervisor and an engine, not yet running (tests write rules first)."""
    sup = FakeSupervisor(["web", "db", "app", "idle", "busy"])
    engine = RuleEngine(cast(Supervisor, sup), tmp_path, rng=lambda: 0.5)
    return sup, engine, tmp_path


@asynccontextmanager
async def engine_running(sup: FakeSupervisor, engine: RuleEngine) -> AsyncIterator[None]:
    """The engine running against ``sup`` (ready) until the block ends."""
    async with trio.open_nursery() as nursery:
        sup.stop_listeners.append(engine.user_stopped)
        await nursery.start(engine.run)
        sup.ready.set()
        await trio.testing.wait_all_tasks_blocked()
        yield
        nursery.cancel_scope.cancel()


# ------------------------------------------------------------------ pure books


def test_token_bucket_allows_a_burst_then_paces(clock: trio.testing.MockClock) -> None:
    bucket = TokenBucket(per_minute=6, now=0.0)  # one every 10 s, bursts of 6
    assert [bucket.reserve(0.0) for _ in range(6)] == [0.0] * 6
    assert bucket.reserve(0.0) == pytest.approx(10.0)
    assert bucket.reserve(0.0) == pytest.approx(20.0)
    # Refills at the rate, never above capacity.
    assert bucket.reserve(1000.0) == 0.0
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0, now=0.0)


def test_restart_book_backoff_window_and_reset() -> None:
    policy = RestartPolicy("on-failure", max_restarts=3, window=60.0,
                           backoff=Backoff(initial=1.0, factor=2.0, max=3.0), reset_after=10.0)
    book = RestartBook(policy)
    assert book.died(0.0) == 1.0
    assert book.died(1.0) == 2.0
    assert book.died(3.0) == 3.0  # capped
    assert book.died(6.0) is None  # 3 restarts within 60 s: given up
    assert book.gave_up
    # Once the window has passed, a run that lasted reset_after starts over.
    book = RestartBook(policy)
    for t in (0.0, 1.0, 3.0):
        book.died(t)
    book.running(100.0)
    assert book.died(115.0) == 1.0
    assert not book.gave_up


def test_restart_book_short_runs_keep_backing_off() -> None:
    book = RestartBook(RestartPolicy("always", backoff=Backoff(0.1, 2.0, 100.0)))
    delays = []
    for i in range(5):
        book.running(float(i * 10))
        delays.append(book.died(float(i * 10) + 1))  # each run lasts 1 s < 10 s
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6])


# ------------------------------------------------------------------ engine


async def test_restart_delays_follow_the_backoff_on_the_clock(
    rig: tuple[FakeSupervisor, RuleEngine, Path], clock: trio.testing.MockClock
) -> None:
    sup, engine, rules = rig
    (rules / "r.toml").write_text(
        '[[rule]]\nname = "crash"\ncontainers = "web"\nrestart = "on-failure"\n'
        'max_restarts = 4\nbackoff = { initial = "1s", factor = 3.0, max = "5s" }\n')
    async with engine_running(sup, engine):
        await running(sup, "web")
        died = []
        with sup.bus.subscribe() as sub:
            for _ in range(5):
                # Each run lasts under reset_after (10 s): the backoff keeps growing.
                died.append(trio.current_time())
                sup.die("web", code=2)
                await trio.sleep(6)
            events = []
            while (e := sub.receive_nowait()) is not None:
                events.append(e)
        starts = sup.starts("web")
        assert [s - d for s, d in zip(starts, died, strict=False)] == pytest.approx(
            [1.0, 3.0, 5.0, 5.0])
        assert len(starts) == 4
        notices = [e for e in events if e.is_notice]
        assert [(n.notice, n.detail, n.cause_text) for n in notices] == [
            ("restart_given_up", "4 restarts within 60 s", "rule:crash")]
        assert sup.containers["web"].state is S.STOPPED


async def test_clean_exit_user_stop_and_rule_stop_are_not_restarted(
    rig: tuple[FakeSupervisor, RuleEngine, Path], clock: trio.testing.MockClock
) -> None:
    sup, engine, rules = rig
    (rules / "r.toml").write_text(
        '[[rule]]\nname = "fail"\ncontainers = "web"\nrestart = "on-failure"\n'
        '[[rule]]\nname = "all"\ncontainers = "db"\nrestart = "always"\n')
    async with engine_running(sup, engine):
        await running(sup, "web", "db")
        sup.die("web", code=0)
        await sup.stop("db")
        await trio.sleep(100)
        assert sup.calls == [(sup.calls[0][0], "stop", "db", None)]
        # "always" restarts a clean exit; a kill by signal is a failure.
        await running(sup, "web", "db")
        sup.die("db", code=0)
        sup.die("web", code=None, signal=9)
        await trio.sleep(1)
        assert sorted(n for _, op, n, _ in sup.calls if op == "start") == ["db", "web"]


async def test_a_users_stop_cancels_the_pending_restart(
    rig: tuple[FakeSupervisor, RuleEngine, Path], clock: trio.testing.MockClock
) -> None:
    sup, engine, rules = rig
    (rules / "r.toml").write_text(
        '[[rule]]\nname = "keep"\ncontainers = "web"\nrestart = "always"\n'
        'backoff = { initial = "10s" }\n')
    async with engine_running(sup, engine):
        await running(sup, "web")
        with sup.bus.subscribe() as sub:
            sup.die("web")
            await trio.sleep(5)
            await sup.stop("web")  # STOPPED already: succeeds, cancels the restart
            await trio.sleep(60)
            details = []
            while (e := sub.receive_nowait()) is not None:
                details.append((e.notice, e.detail))
        assert sup.starts("web") == []
        assert ("restart_cancelled", "stopped by a user") in details
        with pytest.raises(WrongState):
            await sup.stop("web")  # nothing pending any more


async def test_a_users_stop_racing_a_death_on_its_own_is_still_final(
    rig: tuple[FakeSupervisor, RuleEngine, Path], clock: trio.testing.MockClock
) -> None:
    sup, engine, rules = rig
    (rules / "r.toml").write_text(
        '[[rule]]\nname = "keep"\ncontainers_regex = "^(web|db)$"\nrestart = "always"\n'
        'backoff = { initial = "0s" }\n')
    async with engine_running(sup, engine):
        await running(sup, "web", "db")
        # web: the user's stop lands while it is already dying on its own.
        sup.containers["web"].transition(S.STOPPING, Cause.KERNEL, exit=ExitStatus(1, None))
        await sup.stop("web")
        # db: it is STOPPED before the engine has even seen it die.
        sup.die("db")
        with pytest.raises(WrongState):
            await sup.stop("db")
        await trio.sleep(60)
        assert sup.starts("web") == []
        assert sup.starts("db") == []
        # A start since then ends it: the next death is the policy's again.
        await sup.start("web")
        sup.die("web")
        await trio.sleep(1)
        assert len(sup.starts("web")) == 2


async def test_a_users_stop_outlasts_a_policys_failed_start_and_a_daemon_restart(
    tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    journal = Journal(tmp_path / "j.db")
    # The last daemon died while a user's stop of "db" was under way.
    journal.append(Event("db", S.RUNNING, S.STOPPING, Cause.COMMAND))
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.toml").write_text(
        '[[rule]]\nname = "keep"\ncontainers_regex = "^(web|db)$"\nrestart = "on-failure"\n'
        'backoff = { initial = "0s" }\n')
    sup = FakeSupervisor(["web", "db"], journal)
    engine = RuleEngine(cast(Supervisor, sup), rules, rng=lambda: 0.5)
    async with engine_running(sup, engine):
        # web: a policy's start is under way when the user stops it; the start fails.
        web = sup.containers["web"]
        web.transition(S.STARTING, Cause.RULE, rule="keep")
        engine.user_stopped("web")  # what Supervisor.stop tells its listeners first
        web.transition(S.ABORTING, Cause.RULE, rule="keep")
        web.transition(S.STOPPED, Cause.RULE, rule="keep")
        # db: this daemon resumed that stop silently; only STOPPED is published.
        db = sup.containers["db"]
        db.state = S.STOPPING
        db.transition(S.STOPPED, Cause.KERNEL, exit=ExitStatus(None, 9))
        await trio.sleep(60)
        assert sup.starts("web") == []
        assert sup.starts("db") == []
    journal.close()


async def test_budget_spreads_a_mass_failure(
    tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    names = [f"c{i}" for i in range(10)]
    sup = FakeSupervisor(names)
    (tmp_path / "r.toml").write_text(
        '[[rule]]\nname = "all"\nrestart = "always"\nbackoff = { initial = "0s" }\n')
    engine = RuleEngine(cast(Supervisor, sup), tmp_path, restart_budget=6, rng=lambda: 0.5)
    async with engine_running(sup, engine):
        await running(sup, *names)
        t0 = trio.current_time()
        for name in names:
            sup.die(name)
        await trio.sleep(100)
        starts = sorted(t - t0 for t, op, _, _ in sup.calls if op == "start")
        # A burst of 6 at once, then one every 10 s.
        assert starts == pytest.approx([0.0] * 6 + [10.0, 20.0, 30.0, 40.0])


async def test_boot_starts_always_and_unless_stopped_as_docker_does(
    tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    journal = Journal(tmp_path / "j.db")
    # What the last daemon saw: a crashed, b stopped by a user, c never ran.
    journal.append(Event("a", S.RUNNING, S.STOPPING, Cause.KERNEL, exit_code=1))
    journal.append(Event("b", S.RUNNING, S.STOPPING, Cause.COMMAND))
    journal.append(Event("d", S.RUNNING, S.STOPPING, Cause.COMMAND))
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.toml").write_text(
        '[[rule]]\nname = "us"\ncontainers_regex = "^[abc]$"\nrestart = "unless-stopped"\n'
        '[[rule]]\nname = "al"\ncontainers = "d"\nrestart = "always"\n')
    sup = FakeSupervisor(["a", "b", "c", "d"], journal)
    engine = RuleEngine(cast(Supervisor, sup), rules, rng=lambda: 0.5)
    async with engine_running(sup, engine):
        await trio.sleep(1)
        assert sorted(n for _, op, n, _ in sup.calls if op == "start") == ["a", "d"]
    journal.close()


async def test_user_start_after_giving_up_starts_the_books_over(
    rig: tuple[FakeSupervisor, RuleEngine, Path], clock: trio.testing.MockClock
) -> None:
    sup, engine, rules = rig
    (rules / "r.toml").write_text(
        '[[rule]]\nname = "crash"\ncontainers = "web"\nrestart = "on-failure"\n'
        'max_restarts = 1\nbackoff = { initial = "1s" }\n')
    async with engine_running(sup, engine):
        await running(sup, "web")
        sup.die("web")
        await trio.sleep(10)
        sup.die("web")
        await trio.sleep(10)
        assert len(sup.starts("web")) == 1
        assert engine.books["web"]["crash"].gave_up
        await sup.start("web")  # a user's start
        sup.die("web")
        await trio.sleep(10)
        assert len(sup.starts("web")) == 3


async def test_idle_window_fires_once_per_stretch(
    rig: tuple[FakeSupervisor, RuleEngine, Path], clock: trio.testing.MockClock
) -> None:
    sup, engine, rules = rig
    (rules / "r.toml").write_text(
        '[[rule]]\nname = "idle"\ncontainers_regex = "^(idle|busy)$"\n'
        'sample = { cpu_below = "5%", for = "10s", every = "1s" }\nactions = ["freeze"]\n')
    await running(sup, "idle", "busy")
    for name in ("idle", "busy"):
        sup.cgroups[name] = FakeCgroup(sup, name)
    sup.cpu = {"idle": 0.01, "busy": 0.5}
    t0 = trio.current_time()
    async with engine_running(sup, engine):
        await trio.sleep(30)
        freezes = [(t - t0, n) for t, op, n, _ in sup.calls if op == "freeze"]
        # First sample at 1 s gives no rate; idle from 1 s, for 10 s: at 11 s.
        assert freezes == [(pytest.approx(11.0), "idle")]
        assert sup.containers["idle"].state is S.FROZEN
        assert sup.containers["busy"].state is S.RUNNING


async def test_ordering_rule_and_a_failing_action_are_isolated(
    rig: tuple[FakeSupervisor, RuleEngine, Path], clock: trio.testing.MockClock
) -> None:
    sup, engine, rules = rig
    (rules / "r.toml").write_text(
        '[[rule]]\nname = "ghost"\ncontainers = "db"\non = "RUNNING"\n'
        'actions = [{ start = "ghost" }, { start = "web" }]\n'
        '[[rule]]\nname = "order"\ncontainers = "db"\non = "RUNNING"\n'
        'actions = [{ start = "app" }]\n')
    async with engine_running(sup, engine):
        await sup.start("db")
        await trio.sleep(1)
        started = [(n, rule) for _, op, n, rule in sup.calls if op == "start"]
        # ghost fails (NotFound) and stops its own rule there; "order" is unaffected.
        assert started == [("db", None), ("app", "order")]


async def test_describe_shows_rules_books_and_file_errors(
    rig: tuple[FakeSupervisor, RuleEngine, Path], clock: trio.testing.MockClock
) -> None:
    sup, engine, rules = rig
    (rules / "a.toml").write_text(
        '[[rule]]\nname = "crash"\ncontainers = "web"\nrestart = "on-failure"\n'
        'backoff = { initial = "5s" }\n')
    (rules / "b.toml").write_text('[[rule]]\nname = "crash"\nevery = "1s"\nactions = ["stop"]\n')
    async with engine_running(sup, engine):
        await running(sup, "web")
        sup.die("web")
        await trio.sleep(1)
        report = engine.describe()
        assert [r["name"] for r in report["rules"]] == ["crash"]
        assert report["rules"][0]["trigger"] == "restart on-failure"
        assert report["rules"][0]["state"] == {
            "web": "1 restart in the last 60 s, next in 4.0 s"}
        assert len(report["errors"]) == 1
        assert report["errors"][0]["error"].endswith(
            f"b.toml:1: rule 'crash' is already defined at {rules / 'a.toml'}:1")


async def test_another_hosts_event_fires_only_the_rules_naming_that_host(
    rig: tuple[FakeSupervisor, RuleEngine, Path], clock: trio.testing.MockClock
) -> None:
    sup, engine, rules = rig
    (rules / "r.toml").write_text(
        '[[rule]]\nname = "follow"\ncontainers = "host-a:db"\non = "RUNNING"\n'
        'actions = [{ start = "app" }]\n'
        '[[rule]]\nname = "local-db"\ncontainers = "db"\non = "RUNNING"\n'
        'actions = [{ start = "web" }]\n')
    async with engine_running(sup, engine):
        remote = Event("db", S.STARTING, S.RUNNING, Cause.KERNEL, id=7)
        # Another host's db, and host-a's db moving elsewhere: no rule fires.
        assert engine.match_remote("host-b", remote) is None
        assert engine.match_remote("host-a", Event("db", S.RUNNING, S.STOPPING,
                                                   Cause.KERNEL)) is None
        fire = engine.match_remote("host-a", remote)
        assert fire is not None
        await trio.sleep(1)
        assert sup.calls == []  # matching alone does nothing
        fire()
        await trio.sleep(1)
        # The local app starts, the local rule on "db" stays quiet.
        assert [(op, n, r) for _, op, n, r in sup.calls] == [("start", "app", "follow")]
        assert sup.containers["web"].state is S.STOPPED
        assert engine.names_other_hosts()


async def test_a_rule_naming_this_host_is_about_a_local_container(
    rig: tuple[FakeSupervisor, RuleEngine, Path], clock: trio.testing.MockClock
) -> None:
    sup, engine, rules = rig
    engine.host = "here"
    (rules / "r.toml").write_text(
        '[[rule]]\nname = "mine"\ncontainers = "here:db"\non = "RUNNING"\n'
        'actions = [{ start = "app" }]\n')
    async with engine_running(sup, engine):
        assert not engine.names_other_hosts()  # nothing to read from the fleet for it
        await sup.start("db")
        await trio.sleep(1)
        assert [(op, n, r) for _, op, n, r in sup.calls] == [
            ("start", "db", None), ("start", "app", "mine")]
