"""The event journal: every transition, numbered, on disk (sqlite3, WAL).

It lets ``monitor --since`` and ``wait`` see what already happened, and keeps
event ids increasing across daemon restarts. It is bounded by count and age.
A journal that fails (corrupt file, full disk) is reported loudly and then
left alone: the daemon goes on supervising from memory, numbering events
past anything the journal could have handed out.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import structlog

from lxcflow.states import Event, State, parse_cause

log = structlog.get_logger("lxcflow.journal")

#: in the lxcpath; a leading dot keeps it apart from container names
JOURNAL_FILE = ".journal.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    time_ns INTEGER NOT NULL,
    container TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    cause TEXT NOT NULL,
    exit_code INTEGER,
    signal INTEGER,
    detail TEXT,
    notice TEXT
);
CREATE INDEX IF NOT EXISTS events_time ON events (time_ns);
CREATE INDEX IF NOT EXISTS events_container ON events (container, id);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

#: PRAGMA user_version of the schema above; older journals are migrated
#: (version 2 added ``meta``)
VERSION = 2
#: version 0 had no notice column: a notice's kind led its detail, as
#: "restart_given_up: 3 restarts within 60 s"
_MIGRATE_TO_1 = """
ALTER TABLE events ADD COLUMN notice TEXT;
UPDATE events SET notice = substr(detail, 1, instr(detail, ':') - 1),
                  detail = ltrim(substr(detail, instr(detail, ':') + 1))
    WHERE from_state = to_state AND instr(detail, ':') > 0;
"""

#: meta key of the last event the fleet's stream acknowledged, as "epoch:id"
PUBLISHED_KEY = "nats_acked"

_COLUMNS = "id, time_ns, container, from_state, to_state, cause, exit_code, signal, detail, notice"


def _fallback_first_id() -> int:
    # Without a readable journal the last id is unknown; microseconds since
    # the epoch stay above any id handed out before (ids are far sparser).
    return time.time_ns() // 1000


class Journal:
    """Append-only event store with retention.

    Args:
        path: the sqlite file (created if missing).
        max_events: keep at most this many events.
        max_age_s: drop events older than this.
        hold_unpublished: never drop an event the fleet's stream has not
            acknowledged (see :meth:`published`), whatever the limits say.
    """

    PRUNE_EVERY = 1000

    def __init__(self, path: Path, *, max_events: int = 100_000, max_age_s: float = 7 * 86400,
                 hold_unpublished: bool = False):
        self._hold_unpublished = hold_unpublished
        self.path = path
        self.max_events = max_events
        self.max_age_ns = int(max_age_s * 1e9)
        self._db: sqlite3.Connection | None = None
        self._next_id = 1
        self._since_prune = 0
        #: names this journal apart from any that replaced it or that it replaced
        self.epoch = secrets.token_hex(4)
        #: events after this id are kept whatever the retention says (None: no hold)
        self.hold_after: int | None = None
        self._open()

    @property
    def healthy(self) -> bool:
        """Whether events are still being written to disk."""
        return self._db is not None

    @property
    def next_id(self) -> int:
        return self._next_id

    def _open(self) -> None:
        try:
            last = self._connect()
        except sqlite3.Error as e:
            # Unreadable: keep it for a post-mortem and start a new one, with
            # ids past anything the old one can have handed out.
            aside = self.path.with_name(f"{self.path.name}.broken-{time.strftime('%Y%m%dT%H%M%S')}")
            try:
                os.replace(self.path, aside)
                self._connect()
            except (OSError, sqlite3.Error) as again:
                log.error("journal_unavailable", path=str(self.path), error=str(again),
                          consequence="events are kept in memory only")
                self.close()
            else:
                log.error("journal_unreadable", path=str(self.path), moved_to=str(aside),
                          error=str(e), consequence="started a new journal")
            self._next_id = _fallback_first_id()
            return
        self._next_id = (last or 0) + 1
        if self._unsaved_marker.exists():
            # A previous daemon numbered events it could not store: they
            # reached subscribers, so their ids must never come again.
            self._next_id = max(self._next_id, _fallback_first_id())
            self._unsaved_marker.unlink(missing_ok=True)
        self.prune()  # a daemon restarted often still keeps its bounds

    @property
    def _unsaved_marker(self) -> Path:
        return self.path.with_name(self.path.name + ".unsaved")

    def _connect(self) -> int | None:
        """Open (creating if needed) and return the last stored id."""
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # A transition lost with the machine's power is acceptable; one
            # fsync per event is not (the supervisor waits on this write).
            db.execute("PRAGMA synchronous=NORMAL")
            _migrate(db)
            last = db.execute("SELECT max(id) FROM events").fetchone()[0]
        except sqlite3.Error:
            db.close()
            raise
        self._db = db
        epoch = self.meta("epoch")
        if epoch is None:
            self.set_meta("epoch", self.epoch)
        else:
            self.epoch = epoch
        if self._hold_unpublished:
            self.hold_after = self.published()
        return int(last) if last is not None else None

    def published(self) -> int:
        """The last event id the fleet's stream acknowledged (0: none of this epoch)."""
        epoch, _, number = (self.meta(PUBLISHED_KEY) or "").partition(":")
        return int(number) if epoch == self.epoch and number.isdigit() else 0

    def set_published(self, event_id: int) -> None:
        """Record that the stream has every event up to ``event_id``; retention
        may drop them now."""
        self.set_meta(PUBLISHED_KEY, f"{self.epoch}:{event_id}")
        if self._hold_unpublished:
            self.hold_after = event_id

    def new_epoch(self) -> None:
        """Start a new epoch: what is numbered from now on is told apart from
        anything numbered before, whatever the ids (see the fleet's publisher)."""
        published = self.published()
        self.epoch = secrets.token_hex(4)
        self.set_meta("epoch", self.epoch)
        self.set_published(published)

    def skip_past(self, event_id: int) -> None:
        """Number the next event after ``event_id`` (ids handed out elsewhere)."""
        self._next_id = max(self._next_id, event_id + 1)

    def meta(self, key: str) -> str | None:
        """A value the daemon keeps beside the events (None: never set, or no journal)."""
        if self._db is None:
            return None
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as e:
            self._fail(e)
            return None
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        if self._db is None:
            return
        try:
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                             (key, value))
        except sqlite3.Error as e:
            self._fail(e)

    def append(self, event: Event) -> int:
        """Number ``event`` and store it; returns its id (stored or not)."""
        event_id = self._next_id
        self._next_id += 1
        if self._db is None:
            return event_id
        try:
            self._db.execute(
                f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (event_id, event.time_ns, event.container, event.from_state.value,
                 event.to_state.value, event.cause_text, event.exit_code, event.signal,
                 event.detail, event.notice),
            )
            self._since_prune += 1
            if self._since_prune >= self.PRUNE_EVERY:
                self.prune()
        except sqlite3.Error as e:
            self._fail(e)
        return event_id

    def _fail(self, error: Exception) -> None:
        log.error("journal_write_failed", path=str(self.path), error=str(error),
                  consequence="events are kept in memory only from now on")
        self.close()
        try:
            self._unsaved_marker.touch()  # an empty file: usually fits on a full disk
        except OSError as e:
            log.error("journal_marker_failed", error=str(e),
                      consequence="the next daemon may reuse event ids")

    def prune(self) -> None:
        """Apply retention: by age, then by count; never past :attr:`hold_after`."""
        if self._db is None:
            return
        self._since_prune = 0
        cutoff = time.time_ns() - self.max_age_ns
        hold = self.hold_after if self.hold_after is not None else self._next_id
        self._db.execute("DELETE FROM events WHERE time_ns < ? AND id <= ?", (cutoff, hold))
        self._db.execute("DELETE FROM events WHERE id <= ?",
                         (min(self._next_id - 1 - self.max_events, hold),))

    def since(self, *, after_id: int = 0, from_ns: int = 0, limit: int = 1000) -> list[Event]:
        """Stored events with id > ``after_id`` and time >= ``from_ns``, oldest first."""
        if self._db is None:
            return []
        try:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM events WHERE id > ? AND time_ns >= ? "
                "ORDER BY id LIMIT ?",
                (after_id, from_ns, limit),
            ).fetchall()
        except sqlite3.Error as e:
            self._fail(e)
            return []
        return [_event(row) for row in rows]

    def replay(self, *, after_id: int = 0, from_ns: int = 0) -> Iterator[Event]:
        """Every stored event after the given point, in pages."""
        while True:
            page = self.since(after_id=after_id, from_ns=from_ns)
            yield from page
            if len(page) < 1000:
                return
            after_id = page[-1].id

    def last_states(self) -> dict[str, State]:
        """Each container's state after its last stored event."""
        if self._db is None:
            return {}
        try:
            rows = self._db.execute(
                "SELECT container, to_state FROM events WHERE id IN "
                "(SELECT max(id) FROM events GROUP BY container)"
            ).fetchall()
        except sqlite3.Error as e:
            self._fail(e)
            return {}
        return {name: State(state) for name, state in rows}

    def last_stops(self) -> dict[str, Event]:
        """Each container's last stored ``-> STOPPING`` event: who stopped it last."""
        return self._last_arrivals(State.STOPPING)

    def last_ends(self) -> dict[str, Event]:
        """Each container's last stored ``-> STOPPED`` event: how its last run ended."""
        return self._last_arrivals(State.STOPPED)

    def _last_arrivals(self, state: State) -> dict[str, Event]:
        """Each container's last stored transition into ``state`` (notices excluded)."""
        if self._db is None:
            return {}
        try:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM events WHERE id IN (SELECT max(id) FROM events "
                "WHERE to_state = ? AND from_state != ? GROUP BY container)",
                (state.value, state.value),
            ).fetchall()
        except sqlite3.Error as e:
            self._fail(e)
            return {}
        return {row[2]: _event(row) for row in rows}

    def close(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None


def _migrate(db: sqlite3.Connection) -> None:
    """Create the schema, or bring an older journal's up to :data:`VERSION`,
    in one transaction (a daemon killed meanwhile leaves the old one whole)."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version >= VERSION:
        return
    exists = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'events'").fetchone()
    columns = {row[1] for row in db.execute("PRAGMA table_info(events)")}
    db.execute("BEGIN IMMEDIATE")
    try:
        if exists and "notice" not in columns:
            for statement in _MIGRATE_TO_1.split(";"):
                if statement.strip():
                    db.execute(statement)
        for statement in SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {VERSION}")
        db.execute("COMMIT")
    except sqlite3.Error:
        db.execute("ROLLBACK")
        raise
    if exists and "notice" not in columns:
        log.info("journal_migrated", to_version=VERSION)


def _event(row: tuple) -> Event:  # type: ignore[type-arg]
    (event_id, time_ns, container, from_state, to_state, cause, exit_code, sig, detail,
     notice) = row
    cause_kind, rule = parse_cause(cause)
    return Event(
        container=container, from_state=State(from_state), to_state=State(to_state),
        cause=cause_kind, rule=rule, time_ns=time_ns, id=event_id, exit_code=exit_code, signal=sig,
        detail=detail, notice=notice,
    )
