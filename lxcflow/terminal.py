"""A command's terminal in the caller's: a pty relayed in raw mode, as
lxc-attach and ssh do it.

Used by the CLI (``attach``), so standard library only and imported only by
the command that needs it. The caller's terminal is put back as it was on
every way out.
"""

from __future__ import annotations

import os
import select
import termios
import tty

# The CLI imports this module: typing costs milliseconds there.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from lxcflow.client import Client

#: seconds to wait for the last output after the command ended, when
#: something it started in the background still holds the terminal
DRAIN = 0.05


class HungUp(Exception):
    """The caller's own session ended (SIGHUP or SIGTERM to the CLI)."""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def run_on_pty(client: Client, start: Callable[[int], Iterator[Any]]) -> Any:
    """Give a new pty's slave to ``start`` (which sends the request and
    returns its reply stream), relay the caller's terminal to the master
    until the command ends, and return the stream's last result."""
    import _signal

    master, slave = os.openpty()
    try:
        try:
            termios.tcsetwinsize(slave, termios.tcgetwinsize(0))
        except termios.error:
            pass
        try:
            stream = start(slave)
            next(stream)  # started: nothing of it runs on our terminal before this
        finally:
            os.close(slave)  # the command's copies are the only ones now

        def resize(_signum: int, _frame: object) -> None:
            try:
                termios.tcsetwinsize(master, termios.tcgetwinsize(0))
            except termios.error:
                pass

        def hang_up(_signum: int, _frame: object) -> None:
            raise HungUp

        # A signal that lands between the last check Python makes and the
        # select() that follows would only be handled once select returns
        # for another reason: its byte on this pipe makes select return.
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        previous_wakeup = _signal.set_wakeup_fd(wake_w)
        _signal.signal(_signal.SIGWINCH, resize)
        for sig in (_signal.SIGHUP, _signal.SIGTERM):
            _signal.signal(sig, hang_up)
        try:
            saved = termios.tcgetattr(0)
            tty.setraw(0)
            try:
                return _relay(master, wake_r, client, stream)
            except HungUp:
                # Our caller's session is over: so is the command's (the daemon
                # hangs it up when this connection closes). Ended as by SIGHUP.
                return {"exit_code": None, "signal": int(_signal.SIGHUP)}
            finally:
                termios.tcsetattr(0, termios.TCSADRAIN, saved)
        finally:
            _signal.set_wakeup_fd(previous_wakeup)
            os.close(wake_r)
            os.close(wake_w)
    finally:
        os.close(master)


def _relay(master: int, wakeup: int, client: Client, stream: Iterator[Any]) -> Any:
    result = None
    done = False
    stdin_open = True
    while True:
        if not done and client.reply_buffered():
            result, done = next(stream), True
        watched = [master, wakeup] + ([0] if stdin_open else []) + (
            [] if done else [client.fileno()])
        ready, _, _ = select.select(watched, [], [], DRAIN if done else None)
        if wakeup in ready:
            os.read(wakeup, 512)  # the handlers run now; HungUp ends the relay
            continue
        if done and master not in ready:
            return result  # it ended and nothing more is coming
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every holder of the slave is gone
                data = b""
            if not data:
                return next(stream) if not done else result
            _write_all(1, data)
        if 0 in ready:
            data = os.read(0, 65536)
            if data:
                _write_all(master, data)
            else:
                stdin_open = False
        if not done and client.fileno() in ready:
            result, done = next(stream), True
