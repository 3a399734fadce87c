"""``monitor`` and ``wait``: events in order, from the journal and then live, none missed.

Both subscribe to the bus *before* they read anything else (the journal,
the current states), and skip by event id what they have already seen: so
nothing falls between the past and the live stream, and nothing arrives
twice. A subscriber that falls behind catches up from the journal.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable

import trio

from lxcflow.daemon.events import EventBus, Subscription
from lxcflow.daemon.supervisor import Supervisor
from lxcflow.errors import LxcflowError, OperationTimeout, WrongState
from lxcflow.rules.health import VERDICTS
from lxcflow.states import Event, State

#: sends one streamed item to the client (``{"missed": ...}`` or an event's dict)
Send = Callable[[dict[str, object]], Awaitable[None]]


async def monitor(
    bus: EventBus,
    send: Send,
    *,
    pattern: re.Pattern[str] | None,
    since_id: int | None,
    since_ns: int | None,
    follow: bool,
) -> int:
    """Stream events whose container matches ``pattern``: journaled ones
    first (after ``since_id`` / from ``since_ns``), then live while
    ``follow``. Returns the id of the last event seen.
    """
    journal = bus.journal
    last = bus.last_id if since_id is None and since_ns is None else (since_id or 0)

    async def deliver(event: Event) -> None:
        nonlocal last
        last = event.id
        if pattern is None or pattern.search(event.container):
            await send(event.to_dict())

    async def replay(**where: int) -> None:
        assert journal is not None
        for event in journal.replay(**where):
            await deliver(event)
        if not journal.healthy:  # it failed mid-replay: say so, never skip silently
            await send({"missed": None})

    with bus.subscribe() as sub:
        if since_id is not None or since_ns is not None:
            if journal is None or not journal.healthy:
                raise LxcflowError("the journal is unavailable: no past events to replay")
            await replay(after_id=last, from_ns=since_ns or 0)
        while follow:
            if sub.missed:
                missed, sub.missed = sub.missed, 0
                if journal is not None and journal.healthy:
                    await replay(after_id=last)
                else:
                    await send({"missed": missed})
            event = await sub.receive()
            if event.id > last:
                await deliver(event)
    return last


async def wait(
    sup: Supervisor,
    names: list[str],
    wanted: frozenset[State],
    *,
    deadline: float,
    thaw: bool,
    healthy: bool = False,
) -> dict[str, State | None]:
    """Return once every named container is in one of ``wanted`` (at once if
    so), with the states reached. Replaying each event in order is what makes
    it race-free: a state held only for an instant still counts. With
    ``thaw``, frozen containers are thawed first (a user's request, like
    ``unfreeze``: whoever froze it, it thaws). With ``healthy``, each must
    also have been found healthy by its health rule in its current run.

    Raises:
        OperationTimeout: not all there by ``deadline`` (trio's clock).
    """

    def done() -> bool:
        return all(current[n] in wanted and (well[n] or not healthy) for n in names)

    with sup.bus.subscribe(size=65536) as sub:
        current = {name: sup.state_of(name) for name in names}
        well = {name: _healthy_now(sup, name) for name in names}
        if thaw:
            for name in names:
                if current[name] is State.FROZEN:
                    with contextlib.suppress(WrongState):  # changed meanwhile
                        await sup.unfreeze(name)
        with trio.move_on_at(deadline):
            while not done():
                await sup.bus.wait_changed()
                if _apply_events(sub, current, well, done):
                    break
                for name in names:  # created meanwhile (no transition), or events missed
                    if current[name] is None or sub.missed:
                        current[name] = sup.state_of(name)
                        well[name] = _healthy_now(sup, name)
                sub.missed = 0
    if not done():
        what = "RUNNING and healthy" if healthy else "|".join(sorted(s.value for s in wanted))
        raise OperationTimeout(f"waiting for {', '.join(names)} to be {what}")
    return current


def _healthy_now(sup: Supervisor, name: str) -> bool:
    c = sup.containers.get(name)
    return c is not None and c.health is not None and c.health.status == "healthy"


def _apply_events(
    sub: Subscription, current: dict[str, State | None], well: dict[str, bool],
    done: Callable[[], bool],
) -> bool:
    """Replay buffered events in order; True as soon as ``done()`` holds."""
    while (event := sub.receive_nowait()) is not None:
        name = event.container
        if name not in current:
            continue
        if event.is_notice:
            if event.notice in VERDICTS:
                well[name] = event.notice == "healthy"
        else:
            current[name] = event.to_state
            if event.to_state is State.STOPPING or event.from_state is State.STARTING:
                well[name] = False  # a run's health is its own
        if done():
            return True
    return False
