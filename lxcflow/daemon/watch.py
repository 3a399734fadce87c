"""One inotify instance for every cgroup.events file the daemon watches
(and one for the rules directory).

The kernel caps inotify instances per user (128 by default), so a watcher per
container would not scale to 1,000 containers; watches are cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import trio
from inotify_simple import INotify, flags


class Watch:
    """One watched file; :meth:`close` ends it (its holder need not know the watcher)."""

    def __init__(self, watcher: FileWatcher, wd: int) -> None:
        self._watcher, self._wd = watcher, wd

    def close(self) -> None:
        self._watcher._remove(self._wd)


class FileWatcher:
    """Calls a callback whenever a watched file changes.

    Run :meth:`run` in a nursery; :meth:`add` (and close what it returns) any time.
    """

    def __init__(self) -> None:
        self._inotify = INotify(nonblocking=True)
        self._callbacks: dict[int, Callable[[], None]] = {}

    def add(self, path: Path, callback: Callable[[], None], mask: int = flags.MODIFY) -> Watch:
        """Call ``callback`` on ``mask`` events of ``path`` (default: modified)
        until the returned watch is closed."""
        wd = self._inotify.add_watch(str(path), mask)
        self._callbacks[wd] = callback
        return Watch(self, wd)

    def _remove(self, wd: int) -> None:
        if self._callbacks.pop(wd, None) is not None:
            try:
                self._inotify.rm_watch(wd)
            except OSError:
                pass  # already gone with its cgroup (IN_IGNORED)

    async def run(self) -> None:
        try:
            while True:
                await trio.lowlevel.wait_readable(self._inotify.fileno())
                for event in self._inotify.read(timeout=0):
                    if event.mask & flags.IGNORED:
                        self._callbacks.pop(event.wd, None)
                        continue
                    callback = self._callbacks.get(event.wd)
                    if callback is not None:
                        callback()
        finally:
            self._inotify.close()
