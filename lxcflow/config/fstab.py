"""fstab(5)-format mount entries: an fstab file's and ``lxc.mount.entry``'s."""

from __future__ import annotations

import re
from pathlib import Path

from lxcflow.config.model import MountEntry
from lxcflow.config.values import DIGITS_RE
from lxcflow.errors import ConfigError


def read_text(path: Path) -> str:
    """The text of ``path``, or ValueError saying why it cannot be had."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except OSError as exc:
        raise ValueError(exc.strerror or str(exc)) from None


def parse_fstab(path: Path) -> tuple[MountEntry, ...]:
    """The entries of the fstab(5)-format file at ``path``, in order.

    Raises:
        ConfigError: naming the fstab itself (and the line of a bad entry).
    """
    try:
        text = read_text(Path(path))
    except ValueError as exc:
        raise ConfigError(f"cannot read fstab: {exc}", file=str(path)) from None
    return fstab_entries(text, str(path))


def fstab_entries(text: str, file: str) -> tuple[MountEntry, ...]:
    return tuple(
        parse_mount_entry(line, file=file, line=number)
        for number, line in enumerate(text.split("\n"), start=1)
        if line.strip() and not line.strip().startswith("#")
    )


def _unescape(text: str) -> str:
    # fstab(5) writes blanks in paths as octal escapes: \040 space, \011 tab.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), text)


def parse_mount_entry(text: str, *, file: str, line: int) -> MountEntry:
    """One ``source target fstype options [dump [pass]]`` entry.

    Raises:
        ConfigError: at ``file:line``, saying what is malformed.
    """
    fields = text.split()
    problem = None
    if not 4 <= len(fields) <= 6:
        problem = f"expected 'source target fstype options [dump [pass]]', got {text.strip()!r}"
    elif not all(DIGITS_RE.fullmatch(number) for number in fields[4:]):
        problem = f"dump and pass must be integers, got {' '.join(fields[4:])!r}"
    elif "" in fields[3].split(","):
        problem = f"empty option in {fields[3]!r}"
    elif ".." in _unescape(fields[1]).split("/"):
        # Targets land inside the rootfs; '..' would climb out to the host.
        problem = f"target {fields[1]!r} contains '..'"
    if problem is not None:
        raise ConfigError(f"bad mount entry: {problem}", file=file, line=line)
    source, target, fstype, options = fields[:4]
    return MountEntry(
        _unescape(source), _unescape(target), fstype, tuple(options.split(",")), file, line
    )

