"""The rule engine: runs a rules directory against the supervisor.

It reads the event bus (subscribed before the supervisor adopts anything, so
recovered deaths count too), samples cgroups for the rules that watch CPU,
memory or processes, and acts through the supervisor's own operations, so
every action is an event with ``cause = rule:<name>``.

Rules are isolated from each other and from the daemon: each firing runs as
its own task, bounded by a timeout, and whatever it raises is logged with the
rule's name and file. Actions on one container are serialised (a rule's stop
never races another rule's restart). The directory is watched with inotify;
a file that no longer parses is reported and its previous version stays in
force.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import structlog
import trio
from inotify_simple import flags

from lxcflow import states
from lxcflow.daemon import hooks, rules_report, waking
from lxcflow.daemon.health import HealthChecks
from lxcflow.daemon.rules_report import RuleFile
from lxcflow.daemon.sampling import Sampler
from lxcflow.daemon.supervisor import Supervisor
from lxcflow.daemon.watch import FileWatcher
from lxcflow.errors import LxcflowError, StartFailed, WrongState
from lxcflow.rules.health import HealthRecord
from lxcflow.rules.model import Action, Every, Health, OnTransition, RestartPolicy, Rule, Sample
from lxcflow.rules.parse import RuleError, duplicates, health_clash, load_text, rule_files
from lxcflow.rules.restart import RestartBook, TokenBucket
from lxcflow.runtime.spec import DEFAULT_PATH
from lxcflow.states import BY_ITS_INIT, Actor, Cause, Event, State

log = structlog.get_logger("lxcflow.rules")

#: what changes a rules directory (a file written, renamed in or out, removed)
DIRECTORY_EVENTS = flags.CLOSE_WRITE | flags.MOVED_TO | flags.MOVED_FROM | flags.DELETE
#: seconds a rule's stop waits for the halt signal to work before SIGKILL
STOP_GRACE = 10.0


class RuleEngine:
    """Runs the rules of ``directory`` (None: no rules) against ``supervisor``.

    Args:
        restart_budget: restarts a minute across all containers (token bucket).
        hook_timeout: seconds a hook action may run, unless the action says.
        action_timeout: seconds one firing of a rule may take in all.
        rng: where backoff jitter comes from (tests pass a fixed one).
    """

    def __init__(
        self,
        supervisor: Supervisor,
        directory: Path | None,
        *,
        restart_budget: float = 120.0,
        hook_timeout: float = 30.0,
        action_timeout: float = 60.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.sup = supervisor
        self.directory = directory
        self.restart_budget = restart_budget
        self.hook_timeout = hook_timeout
        self.action_timeout = action_timeout
        self.rng = rng
        self.files: dict[Path, RuleFile] = {}
        #: container -> rule -> that restart policy's record of it
        self.books: dict[str, dict[str, RestartBook]] = {}
        self._bucket: TokenBucket | None = None
        self._stopping: dict[str, Event] = {}  # container -> its last -> STOPPING event
        #: container -> the last event id when a user stopped it; in force
        #: until a start published after that
        self._user_stopped: dict[str, int] = {}
        self._pending: dict[str, trio.CancelScope] = {}  # container -> its restart wait
        self._locks: dict[str, trio.Lock] = {}
        self._samplers: dict[str, Sampler] = {}
        self.health = HealthChecks(supervisor, self._unhealthy)
        #: this host's name in the fleet (None: a single host), set by the daemon
        self.host: str | None = None
        self._nursery: trio.Nursery | None = None
        self._dir_changed = trio.Event()
        self._changed = trio.Event()

    @property
    def rules(self) -> list[Rule]:
        """Every rule in force, by file name and then order in the file."""
        return [rule for path in sorted(self.files) for rule in self.files[path].rules]

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)

    # ----------------------------------------------------------- lifetime

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Load the rules and react to events until cancelled.

        Started before the supervisor's :meth:`~Supervisor.run`: it subscribes
        at once, and acts once the supervisor has adopted what was running.
        """
        self._bucket = TokenBucket(self.restart_budget, trio.current_time())
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            with self.sup.bus.subscribe(size=65536) as sub:
                self.reload()
                if self.directory is not None and self.directory.is_dir():
                    watcher = FileWatcher()
                    watcher.add(self.directory, lambda: self._dir_changed.set(), DIRECTORY_EVENTS)
                    nursery.start_soon(watcher.run)
                    nursery.start_soon(self._reloader)
                task_status.started()
                await self.sup.ready.wait()
                self._boot()
                waking.rearm(self.sup, (r.name for r in self.rules if r.wake_on), nursery)
                self._sync_samplers()
                self.health.start(nursery, self.rules)
                while True:
                    self.dispatch(await sub.receive_counting("rules_missed_events"))

    async def _reloader(self) -> None:
        while True:
            await self._dir_changed.wait()
            self._dir_changed = trio.Event()
            self.reload()
            if self.sup.ready.is_set():
                self._sync_samplers()
                self.health.sync(self.rules)

    def reload(self) -> None:
        """Re-read the files that changed; a broken one keeps its last good rules."""
        if self.directory is None:
            return
        try:
            paths = rule_files(self.directory)
        except RuleError as e:
            log.error("rules_unreadable", error=str(e))
            return
        for path in paths:
            # By content: a quick rewrite can keep size and (coarse) mtime.
            try:
                text = path.read_bytes()
            except OSError as e:
                log.error("rules_unreadable", file=str(path), error=e.strerror)
                continue  # removed meanwhile (the next event says so), or unreadable
            old = self.files.get(path)
            if old is not None and old.text == text:
                continue
            kept = old.rules if old else []
            try:
                rules = load_text(text, path)
                others = [r for p, f in self.files.items() if p != path for r in f.rules]
                clash = duplicates(rules, others) or next(filter(None, (
                    health_clash([rule], others + rules[:i], self.sup.containers)
                    for i, rule in enumerate(rules))), None)
                if clash is not None:
                    raise clash
            except Exception as e:  # RuleError; anything else is a parser bug, not fatal
                error = str(e) if isinstance(e, RuleError) else f"{path}: {e!r}"
                log.error("rules_invalid", error=error, kept=[r.name for r in kept])
                self.files[path] = RuleFile(kept, text, error)
                continue
            self.files[path] = RuleFile(rules, text)
            log.info("rules_loaded", file=str(path), rules=[r.name for r in rules])
        for path in set(self.files) - set(paths):
            log.info("rules_removed", file=str(path),
                     rules=[r.name for r in self.files.pop(path).rules])
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        """Return after the next reload or change of a restart's books."""
        await self._changed.wait()

    def _boot(self) -> None:
        """``always`` and ``unless-stopped`` start, at daemon start, what ran
        before and is STOPPED now (as Docker does; never-run containers stay)."""
        journal = self.sup.bus.journal
        last_stops = journal.last_stops() if journal is not None else {}
        for rule in self.rules:
            policy = rule.trigger
            if not isinstance(policy, RestartPolicy) or policy.kind == "on-failure":
                continue
            for name, c in sorted(self.sup.containers.items()):
                stop = last_stops.get(name)
                if (c.ephemeral or c.state is not State.STOPPED or stop is None
                        or not rule.containers.matches(name) or name in self._pending):
                    continue
                if policy.kind == "unless-stopped" and stop.cause in (
                        Cause.COMMAND, Cause.RULE, Cause.HALT):
                    continue
                log.info("restart_at_boot", container=name, rule=rule.name, policy=policy.kind)
                self._schedule_restart(rule, name, 0.0)

    # ----------------------------------------------------------- events

    def dispatch(self, event: Event) -> None:
        """React to one event: restart policies and health checks, then the
        rules it triggers."""
        if not event.is_notice:
            self._follow(event)
            self.health.observe(event, self.rules)
        # A rule naming this host as HOST:NAME is about a local container.
        for rule in self._triggered(event, None) + (
                self._triggered(event, self.host) if self.host is not None else []):
            self._fire(rule, event.container, event)

    def _triggered(self, event: Event, host: str | None) -> list[Rule]:
        """The transition rules ``event`` of ``host``'s container (None: a
        local one) fires."""
        return [rule for rule in self.rules
                if isinstance(rule.trigger, OnTransition) and rule.trigger.fires(event)
                and rule.applies(event.container, event.to_state, event, host=host)]

    def names_other_hosts(self) -> bool:
        """Whether some rule is triggered by another host's container."""
        return any(rule.containers.host not in (None, self.host) for rule in self.rules)

    def match_remote(self, host: str, event: Event) -> Callable[[], None] | None:
        """Another host's event (from the fleet's stream): what firing the
        rules that name that host's container would do, or None if none
        does. Their actions act on this host's containers (the parser saw
        to that). The caller records the event as seen, then fires."""
        if self._nursery is None or not self.sup.ready.is_set():
            return None  # not acting yet: the position in the stream says it was seen
        rules = self._triggered(event, host)
        if not rules:
            return None

        def fire() -> None:
            for rule in rules:
                log.info("rule_fired_remote", rule=rule.name, host=host,
                         container=event.container, state=event.to_state.value)
                self._fire(rule, f"{host}:{event.container}", event)

        return fire

    def _follow(self, event: Event) -> None:
        """Keep the restart policies' books by one transition."""
        name = event.container
        stopped_at = self._user_stopped.get(name)
        if event.to_state is State.STARTING and stopped_at is not None and event.id > stopped_at:
            del self._user_stopped[name]  # started since the user's stop
        if event.to_state is State.STOPPING:
            self._stopping[name] = event
        elif event.to_state is State.STARTING and event.cause is not Cause.RULE:
            # Started by a user: whatever a policy had pending or gave up is over.
            self._cancel_restart(name)
            self.books.pop(name, None)
        elif event.to_state is State.RUNNING and event.from_state is State.STARTING:
            for book in self.books.get(name, {}).values():
                book.running(trio.current_time())
        elif event.to_state is State.STOPPED:
            self._on_stopped(event)

    def _on_stopped(self, event: Event) -> None:
        name = event.container
        stopping = self._stopping.pop(name, None)
        c = self.sup.containers.get(name)
        if c is None or c.ephemeral:
            return  # forgotten once stopped: nothing to start again
        if name in self._user_stopped:
            return  # a user's stop is final, even over a policy's failed start
        if event.cause in BY_ITS_INIT:
            return  # the init's own reboot(2): it starts again by itself, or was asked down
        if stopping is None and event.from_state is State.STOPPING:
            # A stop the last daemon began (this one resumed it silently):
            # who asked for it is in the journal.
            journal = self.sup.bus.journal
            stopping = journal.last_stops().get(name) if journal is not None else None
        if event.from_state is State.ABORTING:
            # Only a policy's own start that failed continues its series; a
            # user's start that failed is the user's to retry.
            if event.cause is not Cause.RULE or event.rule is None:
                return
            rule = self.rule(event.rule)
            if rule is None or not isinstance(rule.trigger, RestartPolicy):
                return
            self._restart_after_death(rule, name)
            return
        if stopping is not None and stopping.cause in (Cause.COMMAND, Cause.RULE):
            return  # a stop somebody asked for is never undone
        for rule in self.rules:
            policy = rule.trigger
            if isinstance(policy, RestartPolicy) and rule.containers.matches(name):
                if policy.wants_restart(event.exit_code, event.signal):
                    self._restart_after_death(rule, name)
                return  # the first restart rule that matches decides

    def _restart_after_death(self, rule: Rule, name: str) -> None:
        assert isinstance(rule.trigger, RestartPolicy)
        book = self.books.setdefault(name, {}).setdefault(rule.name, RestartBook(rule.trigger))
        book.policy = rule.trigger  # the rule may have been edited since
        delay = book.died(trio.current_time(), self.rng())
        c = self.sup.containers.get(name)
        if delay is None:
            policy = rule.trigger
            detail = f"{policy.max_restarts} restarts within {policy.window:g} s"
            log.warning("restart_given_up", container=name, rule=rule.name, rule_file=rule.where)
            if c is not None:
                c.notice("restart_given_up", detail, Actor.of_rule(rule.name))
            self._notify()
            return
        self._schedule_restart(rule, name, delay)

    def _schedule_restart(self, rule: Rule, name: str, delay: float) -> None:
        assert self._nursery is not None
        self._cancel_restart(name)
        scope = trio.CancelScope()
        self._pending[name] = scope
        self._nursery.start_soon(self._restart_later, rule, name, delay, scope)
        self._notify()

    def _cancel_restart(self, name: str) -> None:
        scope = self._pending.pop(name, None)
        if scope is not None:
            scope.cancel()

    async def _restart_later(
        self, rule: Rule, name: str, delay: float, scope: trio.CancelScope
    ) -> None:
        """Wait out the backoff and the host-wide budget, then start. Only the
        waiting can be cancelled (a user's stop or start): a start under way
        is never cut short, as that would look like a failed start."""
        with scope:
            try:
                await trio.sleep(delay)
                await self._budget(rule, name)
            finally:
                if self._pending.get(name) is scope:
                    del self._pending[name]
        if scope.cancelled_caught or self.rule(rule.name) is None:
            return  # cancelled, or the rule was removed meanwhile
        try:
            async with self._serialised(name):
                # Checked again now: a user may have stopped or started it
                # while this waited for the container.
                if self.sup.state_of(name) is State.STOPPED and name not in self._user_stopped:
                    await self.sup.start(name, by=Actor.of_rule(rule.name), again=True)
        except StartFailed as e:
            # Its ABORTING -> STOPPED event schedules the next attempt.
            log.warning("restart_failed", container=name, rule=rule.name, error=str(e))
        except WrongState:
            pass  # started by someone else meanwhile: nothing to restart
        except Exception as e:  # e.g. its config broke, or it was destroyed
            log.error("restart_given_up", container=name, rule=rule.name, error=str(e))
            self._notice(name, rule, "restart_given_up", str(e))

    async def _budget(self, rule: Rule, name: str) -> None:
        """Take one restart from the host-wide budget, waiting for it if spent."""
        assert self._bucket is not None
        wait = self._bucket.reserve(trio.current_time())
        if wait > 0:
            log.warning("restart_budget_exhausted", container=name, rule=rule.name,
                        wait_s=round(wait, 3))
            await trio.sleep(wait)

    def budget_tokens(self) -> float:
        """Restarts the host-wide budget would let go at once now."""
        if self._bucket is None:
            return self.restart_budget
        return self._bucket.tokens(trio.current_time())

    def user_stopped(self, name: str) -> bool:
        """A user is stopping ``name``: no policy may start it again until
        somebody starts it, whatever the events still on their way say (it
        may be dying on its own already). Drops a restart waiting for it;
        True if there was one."""
        self._user_stopped[name] = self.sup.bus.last_id
        if name not in self._pending:
            return False
        self._cancel_restart(name)
        c = self.sup.containers.get(name)
        if c is not None:
            c.notice("restart_cancelled", "stopped by a user", Cause.COMMAND)
        return True

    # ----------------------------------------------------------- actions

    def _unhealthy(self, rule: Rule, name: str, event: Event, streak: int) -> None:
        """A health rule's verdict: its actions, after its backoff for the
        ``streak``-th unhealthy verdict in a row."""
        assert self._nursery is not None
        assert isinstance(rule.trigger, Health)
        c = self.sup.containers.get(name)
        if not rule.actions or c is None or c.health is None:
            return
        backoff = rule.trigger.backoff
        delay = backoff.delay(streak, self.rng()) if backoff is not None else 0.0
        self._nursery.start_soon(self._act_when_unhealthy, rule, name, event, delay, c.health)

    async def _act_when_unhealthy(
        self, rule: Rule, name: str, event: Event, delay: float, record: HealthRecord
    ) -> None:
        await trio.sleep(delay)
        c = self.sup.containers.get(name)
        if c is None or c.health is not record or record.status != "unhealthy":
            return  # healthy again, or its run is over, while the backoff ran
        await self._guarded(rule, name, event, list(rule.actions))

    def _fire(self, rule: Rule, name: str, event: Event | None) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._guarded, rule, name, event, list(rule.actions))

    async def _guarded(
        self, rule: Rule, name: str, event: Event | None, actions: list[Action]
    ) -> None:
        """Run a rule's actions in order; nothing it does escapes to the daemon."""
        rlog = log.bind(rule=rule.name, rule_file=rule.where, container=name)
        try:
            with trio.fail_after(self.action_timeout):
                for action in actions:
                    await self._perform(rule, action, name, event)
        except trio.TooSlowError:
            rlog.error("rule_timed_out", timeout_s=self.action_timeout)
        except LxcflowError as e:
            rlog.warning("rule_action_failed", error=str(e))
        except Exception as e:  # a bug must not take the daemon down
            rlog.exception("rule_failed", error=str(e))

    @asynccontextmanager
    async def _serialised(self, name: str) -> AsyncIterator[None]:
        """One rule action at a time per container."""
        lock = self._locks.setdefault(name, trio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and not lock.statistics().tasks_waiting:
                self._locks.pop(name, None)

    async def _perform(self, rule: Rule, action: Action, name: str, event: Event | None) -> None:
        target = action.target or name
        kind = action.kind
        if kind == "log":
            log.info("rule_log", rule=rule.name, container=name, message=action.argument)
            self._notice(target, rule, "log", str(action.argument))
            return
        if kind == "hook":
            await self._hook(rule, action, name, event)
            return
        async with self._serialised(target):
            c = self.sup.get(target)
            if kind == "start":
                if states.can_start(c.state):
                    await self.sup.start(target, by=Actor.of_rule(rule.name))
            elif kind == "stop":
                if c.state is not State.STOPPED:
                    await self.sup.stop(target, grace=STOP_GRACE, by=Actor.of_rule(rule.name))
            elif kind == "restart":
                if isinstance(rule.trigger, Health):
                    await self._budget(rule, target)
                if c.state is not State.STOPPED:
                    await self.sup.stop(target, grace=STOP_GRACE, by=Actor.of_rule(rule.name))
                await self.sup.start(target, by=Actor.of_rule(rule.name), again=True)
            elif kind == "freeze":
                if c.state is State.RUNNING and rule.wake_on == "traffic" and target == name:
                    assert self._nursery is not None
                    await waking.freeze_until_traffic(self.sup, c, rule.name, self._nursery)
                elif c.state is State.RUNNING:
                    await self.sup.freeze(target, by=Actor.of_rule(rule.name))
            elif kind == "unfreeze":
                if c.state is State.FROZEN:
                    await self.sup.unfreeze(target, by=Actor.of_rule(rule.name))
            elif kind == "kill":
                assert isinstance(action.argument, int)
                count = await self.sup.kill(target, action.argument)
                self._notice(target, rule, "kill", f"signal {action.argument} to {count} processes")
            elif kind == "priority":
                assert isinstance(action.argument, int)
                self.sup.priority(target, action.argument)
                self._notice(target, rule, "priority", str(action.argument))

    async def _hook(self, rule: Rule, action: Action, name: str, event: Event | None) -> None:
        env = hooks.global_env(event) if event is not None else {
            "PATH": DEFAULT_PATH, "LXC_NAME": name}
        env["LXCFLOW_RULE"] = rule.name
        stdin = json.dumps(event.to_dict()).encode() + b"\n" if event is not None else b""
        path = str(action.argument)
        result = await hooks.run([path], env=env, stdin=stdin,
                                 kill_after=action.timeout or self.hook_timeout)
        hooks.report(result, hook=path, container=name, rule=rule.name, rule_file=rule.where)
        how = "ok" if result.ok else "timed out" if result.timed_out else f"failed ({result.code})"
        self._notice(name, rule, "hook", f"{os.path.basename(path)} {how}")

    def _notice(self, name: str, rule: Rule, kind: str, detail: str) -> None:
        c = self.sup.containers.get(name)
        if c is not None:
            c.notice(kind, detail, Actor.of_rule(rule.name))

    # ----------------------------------------------------------- sampling

    def _sync_samplers(self) -> None:
        """One task per sample or schedule rule in force; an edited rule's task
        starts over."""
        assert self._nursery is not None
        wanted = {r.name: r for r in self.rules if isinstance(r.trigger, (Sample, Every))}
        for name, sampler in list(self._samplers.items()):
            if wanted.get(name) != sampler.rule:
                sampler.scope.cancel()
                del self._samplers[name]
        for name, rule in wanted.items():
            if name not in self._samplers:
                sampler = Sampler(rule, trio.CancelScope())
                self._samplers[name] = sampler
                self._nursery.start_soon(self._sample_loop, sampler)

    async def _sample_loop(self, sampler: Sampler) -> None:
        rule = sampler.rule
        interval = rule.trigger.every if isinstance(rule.trigger, Sample) else (
            rule.trigger.interval if isinstance(rule.trigger, Every) else 0.0)
        with sampler.scope:
            deadline = trio.current_time()
            while True:
                deadline += interval
                await trio.sleep_until(deadline)
                try:
                    self._sample_once(sampler)
                except Exception as e:
                    log.exception("rule_failed", rule=rule.name, rule_file=rule.where,
                                  error=str(e))

    def _sample_once(self, sampler: Sampler) -> None:
        rule, now = sampler.rule, trio.current_time()
        for name, c in list(self.sup.containers.items()):
            if not rule.applies(name, c.state):
                continue
            if isinstance(rule.trigger, Every):
                self._fire(rule, name, None)
                continue
            if c.state is not State.RUNNING:
                sampler.forget(name)
                continue
            usage = self.sup.usage(name)
            if usage is not None and sampler.due(name, now, usage):
                self._fire(rule, name, None)

    def describe(self) -> dict[str, Any]:
        """What ``rules list`` shows (see :mod:`~lxcflow.daemon.rules_report`)."""
        health = {name: c.health for name, c in self.sup.containers.items() if c.health}
        return rules_report.describe(self.rules, self.books, self._samplers, health, self.files,
                                     self.directory)
