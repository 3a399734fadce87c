"""The client's end of a container keeper's socket (shim/keeper.c): a
console session on the caller's terminal, as lxc-console gives one, and the
console log, followed as it grows.

Used by the CLI (``console``, ``logs``), so standard library only and
imported only by the commands that need it.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import termios
import tty

from lxcflow.errors import LxcflowError, UsageError


def escape_code(text: str) -> int:
    """``-e``: ``a`` or ``^a`` (any letter) is Ctrl-a, as lxc-console reads it."""
    letter = text.removeprefix("^")
    if len(letter) != 1 or not letter.isalpha() or not letter.isascii():
        raise UsageError(f"-e {text!r}: give a letter, as 'a' or '^a' for Ctrl-a")
    return ord(letter.lower()) - ord("a") + 1


def _connect(path: str, request: str) -> tuple[socket.socket, str, list[int], bytes]:
    """Send ``request``; the keeper's reply line, the fds it passed, and
    whatever output came in the same read."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise LxcflowError("the container stopped") from None
    sock.sendall(request.encode() + b"\n")
    data, fds, _flags, _addr = socket.recv_fds(sock, 4096, 1)
    while b"\n" not in data:
        more = sock.recv(4096)
        if not more:
            break
        data += more
    line, _, rest = data.partition(b"\n")
    reply = line.decode(errors="replace")
    if not reply.startswith("ok"):
        sock.close()
        for fd in fds:
            os.close(fd)
        raise LxcflowError(reply.removeprefix("error ") or "the container stopped")
    return sock, reply, fds, rest


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def session(path: str, name: str, tty_number: int, escape: int) -> None:
    """Join the caller's terminal to tty ``tty_number`` (0: the console)
    until the escape then ``q`` is typed, or the container stops."""
    import _signal

    sock, _reply, fds, rest = _connect(path, f"tty {tty_number}")
    master = fds[0] if fds else -1
    key = chr(escape + ord("a") - 1)
    what = "the console" if tty_number == 0 else f"tty {tty_number}"
    print(f"Connected to {what} of {name}\r\nType <Ctrl+{key} q> to exit, "
          f"<Ctrl+{key} Ctrl+{key}> for Ctrl+{key} itself\r", file=sys.stderr)
    on_terminal = os.isatty(0)
    saved = termios.tcgetattr(0) if on_terminal else None
    try:
        if on_terminal and master >= 0:
            def resize(_signum: int, _frame: object) -> None:
                try:
                    termios.tcsetwinsize(master, termios.tcgetwinsize(0))
                except termios.error:
                    pass

            resize(0, None)
            _signal.signal(_signal.SIGWINCH, resize)
        if on_terminal:
            tty.setraw(0)
        _relay(sock, rest, escape)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        sock.close()
        if master >= 0:
            os.close(master)


def _relay(sock: socket.socket, output: bytes, escape: int) -> None:
    _write_all(1, output)
    pending = False  # the escape was typed: the next key says what it meant
    stdin_open = True
    while True:
        ready, _, _ = select.select([sock] + ([0] if stdin_open else []), [], [])
        if sock in ready:
            data = sock.recv(65536)
            if not data:
                return  # the container stopped
            _write_all(1, data)
        if 0 in ready:
            data = os.read(0, 4096)
            if not data:
                stdin_open = False
                continue
            out = bytearray()
            for byte in data:
                if pending:
                    pending = False
                    if byte in (ord("q"), ord("Q")):
                        sock.sendall(bytes(out))
                        return
                    out.append(escape)
                    if byte != escape:
                        out.append(byte)
                elif byte == escape:
                    pending = True
                else:
                    out.append(byte)
            sock.sendall(bytes(out))


def _tail(chunks: list[bytes], lines: int | None) -> bytes:
    data = b"".join(chunks)
    if lines is None:
        return data
    if lines == 0:
        return b""
    kept = data.split(b"\n")
    # a final newline ends the last line rather than starting another
    if kept and kept[-1] == b"":
        kept.pop()
        return b"\n".join(kept[-lines:]) + b"\n"
    return b"\n".join(kept[-lines:])


def _read(path: str, limit: int | None = None) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read() if limit is None else f.read(limit)
    except FileNotFoundError:
        return b""


def show_log(log: str, socket_path: str | None, *, follow: bool, lines: int | None) -> None:
    """Print the console log (its older half, then the current file), its
    last ``lines`` lines if given; with ``follow``, then what the console
    prints until the container stops."""
    out = sys.stdout.buffer
    if not (follow and socket_path):
        out.write(_tail([_read(log + ".1"), _read(log)], lines))
        out.flush()
        return
    try:
        sock, reply, _fds, rest = _connect(socket_path, "log")
    except LxcflowError:  # it stopped meanwhile: the log is complete
        show_log(log, None, follow=False, lines=lines)
        return
    # The keeper said how long the file was when we joined: the rest comes
    # through the socket, nothing twice.
    joined_at = int(reply.split()[1])
    with sock:
        out.write(_tail([_read(log + ".1"), _read(log, joined_at)], lines) + rest)
        out.flush()
        while data := sock.recv(65536):
            out.write(data)
            out.flush()
