"""Paths inside a config: relative ones resolve against the config's directory."""

from __future__ import annotations

import io
import os
import re
import shlex
from pathlib import Path


def resolve(path: str, base_dir: Path) -> str:
    # normpath, not resolve(): symlinks in the user's tree stay as they are.
    return os.path.normpath(base_dir / path)


# LXC's rootfs may name a storage backend as "backend:path".
_BACKENDS = frozenset("dir btrfs overlay overlayfs aufs zfs lvm loop rbd nbd".split())


def split_backend(value: str) -> tuple[str | None, str]:
    backend, sep, path = value.partition(":")
    return (backend, path) if sep and backend in _BACKENDS else (None, value)


def rootfs(value: str, base_dir: Path) -> Path:
    backend, path = split_backend(value)
    if backend not in (None, "dir"):
        raise ValueError(f"storage backend {backend} is not supported (only directories)")
    if not path:
        raise ValueError(f"{value!r} names no directory")
    return Path(resolve(path, base_dir))


def resolve_command(command: str, base_dir: Path) -> str:
    """``command`` with a relative executable that has a '/' made absolute.

    Hooks run through a shell, so only the first word is replaced and the
    rest is kept byte for byte (quoting it again could change its meaning).
    """
    shlex.split(command)  # unbalanced quotes are an error wherever they are
    stream = io.StringIO(command)
    lexer = shlex.shlex(stream, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    program = lexer.get_token()
    if not program or "/" not in program or program.startswith("/"):
        return command
    end = stream.tell()
    if command[end - 1 : end].isspace():  # the lexer also read the blank ending the word
        end -= 1
    return shlex.quote(resolve(program, base_dir)) + command[end:]



_PATH_KEYS = frozenset({"lxc.rootfs", "lxc.rootfs.path", "lxc.mount", "lxc.mount.fstab"})
_ASSIGNMENT_RE = re.compile(r"(\s*([^=]*?)\s*=\s*)(.*?)(\s*)")


def absolutize(text: str, base_dir: Path) -> str:
    """``text`` with its relative path values made absolute against ``base_dir``.

    Rewrites the values of lxc.rootfs[.path] (keeping a ``dir:`` prefix),
    lxc.mount[.fstab], lxc.include (keeping a trailing '/', which marks a
    directory) and the executable of lxc.hook.* commands, without
    following symlinks; every other byte, and so the line count, is kept.
    Used when a config is copied away from the directory it was written in.
    """
    base = Path(os.path.abspath(base_dir))
    return "\n".join(_absolutize_line(line, base) for line in text.split("\n"))


def _absolutize_line(line: str, base_dir: Path) -> str:
    match = _ASSIGNMENT_RE.fullmatch(line)
    if match is None:
        return line
    head, key, value, tail = match.groups()
    if key in _PATH_KEYS:
        backend, path = split_backend(value)
        if backend in (None, "dir") and path and not path.startswith("/"):
            prefix = "" if backend is None else f"{backend}:"
            return head + prefix + resolve(path, base_dir) + tail
    elif key == "lxc.include" and value and not value.startswith("/"):
        return head + resolve(value, base_dir) + ("/" if value.endswith("/") else "") + tail
    elif key.startswith("lxc.hook.") and value:
        try:
            return head + resolve_command(value, base_dir) + tail
        except ValueError:  # left as it is, for parse_config to report
            pass
    return line

