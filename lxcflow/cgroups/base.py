"""What every container cgroup offers, and the file helpers the drivers share.

All I/O here is small synchronous reads and writes of cgroupfs files. Every
``OSError`` becomes a :class:`CgroupError` carrying ``path``, ``op`` and
``errno`` so callers never see a bare ``OSError`` from this package.
"""

from __future__ import annotations

import abc
import enum
import errno as errno_mod
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lxcflow.cgroups import names
from lxcflow.cgroups.layout import Layout
from lxcflow.errors import CgroupError, UsageError


class FreezerState(enum.StrEnum):
    """A cgroup's freezer, in v1's words (what ``freezer.state`` says)."""

    THAWED = "THAWED"
    FREEZING = "FREEZING"  # asked for, not yet confirmed by the kernel
    FROZEN = "FROZEN"


@dataclass(frozen=True)
class CgroupEvents:
    """The two facts a supervisor watches a cgroup for."""

    populated: bool
    frozen: bool


def _error(path: Path, op: str, exc: OSError, message: str | None = None) -> CgroupError:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    text = message or f"cannot {op} {path}: {reason}"
    return CgroupError(text, path=str(path), op=op, errno=exc.errno, reason=reason)


def read_text(path: Path) -> str:
    """The content of a control file."""
    # os.read, not open(): half the cost (7 against 15 us a file here), and
    # a metrics scrape reads four files a container.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        finally:
            os.close(fd)
    except OSError as exc:
        raise _error(path, "read", exc) from exc
    return b"".join(chunks).decode("ascii", errors="replace")


def read_optional(path: Path) -> str | None:
    """The content of a control file, or None where the controller that
    would give it is not there (one open, where a check first costs two)."""
    try:
        return read_text(path)
    except CgroupError as exc:
        if exc.details.get("errno") == errno_mod.ENOENT:
            return None
        raise


def write_text(path: Path, value: str) -> None:
    """Write ``value`` to a control file in one ``write(2)``.

    cgroupfs applies each write separately, so a value must not be split over
    several; O_TRUNC is ignored by the kernel and keeps fake trees honest.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as exc:
        raise _error(path, "write", exc) from exc
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise _error(path, "write", exc, f"cannot write {value!r} to {path}: {reason}") from exc
    finally:
        os.close(fd)


def make_dir(path: Path) -> None:
    """Create one cgroup directory (the kernel gives it its control files)."""
    os.mkdir(path)


def remove_dir(path: Path) -> None:
    """Remove one cgroup directory (cgroupfs drops its control files with it)."""
    os.rmdir(path)


def read_procs(path: Path) -> list[int]:
    """The pids in one ``cgroup.procs`` file; a vanished cgroup has none."""
    try:
        return [int(word) for word in read_text(path).split()]
    except CgroupError as exc:
        if exc.details.get("errno") in (errno_mod.ENOENT, errno_mod.ENODEV):
            return []
        raise


def tree_pids(top: Path) -> set[int]:
    """Every pid in ``top`` and the cgroups below it."""
    found: set[int] = set()
    for dirpath, _dirs, _files in os.walk(top):
        found.update(read_procs(Path(dirpath) / "cgroup.procs"))
    return found


def remove_tree(top: Path, name: str) -> None:
    """rmdir ``top`` and its child cgroups, deepest first; a missing one is fine."""
    # Nearly always there are no child cgroups: one rmdir, and no walk through
    # dozens of control files per hierarchy.
    try:
        remove_dir(top)
        return
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno != errno_mod.EBUSY:
            raise _error(top, "rmdir", exc) from exc
    for dirpath, _dirs, _files in os.walk(top, topdown=False):
        try:
            remove_dir(Path(dirpath))
        except FileNotFoundError:
            continue
        except OSError as exc:
            message = None
            if exc.errno == errno_mod.EBUSY:
                message = f"cgroup {name} still has processes"
            raise _error(Path(dirpath), "rmdir", exc, message) from exc


def parse_events(content: str) -> CgroupEvents:
    """Parse a v2 ``cgroup.events`` file."""
    fields = dict(line.split(None, 1) for line in content.splitlines() if " " in line)
    return CgroupEvents(
        populated=fields.get("populated", "0").strip() == "1",
        frozen=fields.get("frozen", "0").strip() == "1",
    )


def signal_pids(pids: list[int], sig: int) -> int:
    """Send ``sig`` to each pid; returns how many still existed to receive it."""
    sent = 0
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            continue
        sent += 1
    return sent


@dataclass(frozen=True)
class Located:
    """An attribute resolved to its file, with the value conversions for it."""

    path: Path
    to_file: Callable[[str], str]
    from_file: Callable[[str], str]


#: files that decide membership or lxcflow's own bookkeeping: ``set`` refuses
#: them because attribute keys come from users (cgroup.procs would let a
#: config pull any host process into the container).
MANAGED_FILES = frozenset({
    "cgroup.procs", "cgroup.threads", "cgroup.kill", "cgroup.freeze", "cgroup.subtree_control",
    "cgroup.type", "cgroup.clone_children", "cgroup.event_control", "freezer.state",
})


# What a delegated subtree's owner writes in its top directory (v2, v1).
DELEGATED_FILES = ("cgroup.procs", "cgroup.threads", "cgroup.subtree_control", "tasks")


def stat_value(path: Path, key: str) -> int | None:
    """The value of ``key`` in a flat-keyed file such as memory.stat; None
    when the file or the key is not there."""
    try:
        text = read_text(path)
    except (OSError, CgroupError):
        return None
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return None


class ContainerCgroup(abc.ABC):
    """One container's cgroup, across however many hierarchies the layout has."""

    layout: Layout

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # -- what each driver provides ------------------------------------------

    @abc.abstractmethod
    def procs_files(self) -> list[Path]:
        """Every ``cgroup.procs`` the container's init writes ``0`` into."""

    @abc.abstractmethod
    def locate(self, key: str) -> Located | None:
        """Resolve a validated ``key``; None when no such file exists here.

        Raises:
            UsageError: the key has no equivalent on this layout.
        """

    @abc.abstractmethod
    def pids(self) -> list[int]:
        """All processes in the container, child cgroups included, sorted."""

    def process_count(self) -> int:
        """How many processes the container has, as figures (metrics, top)
        show it: read from one hierarchy where one holds them all."""
        return len(self.pids())

    @abc.abstractmethod
    def cpu_usage_ns(self) -> int:
        """CPU time used by the container so far, in nanoseconds."""

    @abc.abstractmethod
    def memory_bytes(self) -> int | None:
        """Memory charged to the container; None without a memory controller."""

    @abc.abstractmethod
    def inactive_file_bytes(self) -> int | None:
        """Of that, file pages the kernel may reclaim first (what cAdvisor
        takes off to get the working set); None without a memory controller."""

    @property
    @abc.abstractmethod
    def events_file(self) -> Path | None:
        """The v2 ``cgroup.events`` to watch with inotify; None on legacy."""

    @abc.abstractmethod
    def read_events(self) -> CgroupEvents:
        """Whether the container has processes and whether it is frozen."""

    @abc.abstractmethod
    def request_freeze(self, frozen: bool) -> None:
        """Ask the kernel to freeze or thaw; returns before it is done."""

    @abc.abstractmethod
    def freezer_state(self) -> FreezerState:
        """Where the freezer stands, as the kernel says."""

    @abc.abstractmethod
    def kill(self, sig: int) -> int:
        """Signal every process; returns how many were signalled.

        SIGKILL uses ``cgroup.kill`` where the kernel has it (then the count
        is of the pids seen just before) and kills frozen processes too on
        every layout.
        """

    @abc.abstractmethod
    def remove(self) -> None:
        """Remove the container's directories; already gone is fine.

        Raises:
            CgroupError: processes are still inside.
        """

    # -- shared behaviour ---------------------------------------------------

    def delegate(self, uid: int, gid: int) -> None:
        """Give the container's root its subtree, as systemd delegates one:
        it may make cgroups below and move its processes among them (systemd
        inside does), never change the limits set on the container's own.

        Raises:
            CgroupError: a chown failed.
        """
        for procs in self.procs_files():
            directory = procs.parent
            for path in (directory, *(directory / f for f in DELEGATED_FILES)):
                try:
                    os.chown(path, uid, gid)
                except FileNotFoundError:
                    continue  # a file of the other version
                except OSError as e:
                    raise _error(path, "chown", e) from None

    def _resolve(self, key: str) -> Located:
        names.check_key(key)
        found = self.locate(key)
        if found is None:
            raise UsageError(
                f"cgroup attribute {key} is not available on this {self.layout.value} system",
                key=key,
                layout=self.layout.value,
            )
        return found

    def set(self, key: str, value: str) -> None:
        """Write an attribute given in v1 or v2 naming.

        Raises:
            UsageError: malformed, unknown, managed or non-equivalent key.
            CgroupError: the kernel refused the value.
        """
        if key in MANAGED_FILES:
            raise UsageError(f"cgroup attribute {key} is managed by lxcflow", key=key)
        found = self._resolve(key)  # validates the key
        write_text(found.path, found.to_file(value))

    def set_each(self, key: str, values: Sequence[str]) -> None:
        """Write several values to one attribute, a write(2) each, through one
        open (``devices.allow`` takes one rule per write).

        Raises:
            UsageError, CgroupError: as :meth:`set`, at the first that fails;
                a CgroupError's ``index`` detail says which value it was.
        """
        if key in MANAGED_FILES:
            raise UsageError(f"cgroup attribute {key} is managed by lxcflow", key=key)
        found = self._resolve(key)
        try:
            fd = os.open(found.path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise _error(found.path, "write", exc) from exc
        try:
            for index, value in enumerate(values):
                try:
                    os.write(fd, found.to_file(value).encode())
                except OSError as exc:
                    error = _error(found.path, "write", exc)
                    error.details["index"] = index
                    raise error from exc
        finally:
            os.close(fd)

    def get(self, key: str) -> str:
        """Read an attribute, converted into the naming ``key`` used."""
        found = self._resolve(key)
        return found.from_file(read_text(found.path)).strip()

    def priority(self) -> int:
        """CPU priority in ``cpu.shares`` terms (default 1024)."""
        try:
            return int(self.get("cpu.shares"))
        except UsageError:
            raise UsageError("CPU priority is not available: no cpu controller") from None

    def set_priority(self, shares: int) -> None:
        """Set CPU priority in ``cpu.shares`` terms (2..262144)."""
        if not names.SHARES_MIN <= shares <= names.SHARES_MAX:
            raise UsageError(
                f"CPU priority must be in {names.SHARES_MIN}..{names.SHARES_MAX}, not {shares}",
                shares=shares,
            )
        try:
            self._resolve("cpu.shares")
        except UsageError:
            raise UsageError("CPU priority is not available: no cpu controller") from None
        self.set("cpu.shares", str(shares))
