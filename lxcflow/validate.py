"""One home for every rule on what a user may type: each decided once, one message each.

The CLI, the config reader, the daemon's request handlers, the rules parser
and the network code all ask here. Imported by every CLI call, so it stays
light: nothing slow to import (re, ipaddress, signal) at module level.

Each rule raises :class:`~lxcflow.errors.UsageError` with its message, the
same whoever asks; a caller may put where the value came from in front of it
(the config reader: ``bad value for KEY: ``; the rules parser: the key).
"""

from __future__ import annotations

from lxcflow.errors import UsageError

#: a container name becomes a directory (and a cgroup) name
NAME_MAX = 64
#: a cgroup parent's segments are directory names too, allowed to be longer
CGROUP_SEGMENT_MAX = 128
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
#: signals are 1..64 on Linux (_NSIG - 1), real-time ones included
SIGNAL_MAX = 64
#: interface names are at most this long (the kernel's IFNAMSIZ - 1)
IFNAME_MAX = 15
_DIGITS = frozenset("0123456789")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def _name_problem(name: str, limit: int) -> str | None:
    """What keeps ``name`` from being one plain directory name, if anything."""
    if not name:
        return "it is empty"
    if name in (".", ".."):
        return "'.' and '..' are not names"
    if "/" in name:
        return "it contains '/'"
    if len(name) > limit:
        return f"it is {len(name)} characters long (at most {limit})"
    if not name[0].isascii() or not name[0].isalnum():
        # A leading '-' reads as an option to every tool; '.' hides the directory.
        return "it must start with a letter or a digit"
    bad = next((ch for ch in name if ch not in _NAME_CHARS), None)
    if bad is not None:
        return f"{bad!r} is not allowed (only letters, digits, '-', '_', '.')"
    return None


def is_glob(pattern: str) -> bool:
    """Whether ``pattern`` is a shell glob over container names (``*``, ``?``
    or ``[...]``, none of which a name may hold) rather than one name."""
    return any(ch in "*?[" for ch in pattern)


def container_name(name: str) -> str:
    """Return ``name`` if it can name a container (it becomes a directory name).

    Raises:
        UsageError: saying what is wrong with it.
    """
    problem = _name_problem(name, NAME_MAX)
    if problem is not None:
        raise UsageError(f"invalid container name {name!r}: {problem}", name=name)
    return name


#: a fleet host name is one subject token and key part in NATS
_HOST_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
HOST_MAX = 64


def host_name(host: str) -> str:
    """Return ``host`` if it can name a host of the fleet (``--host``, the
    HOST of ``HOST:NAME``): letters, digits, ``-`` and ``_``.

    Raises:
        UsageError: saying what is wrong with it.
    """
    bad = next((ch for ch in host if ch not in _HOST_CHARS), None)
    if not host:
        problem = "it is empty"
    elif bad is not None:
        problem = f"{bad!r} is not allowed (only letters, digits, '-', '_')"
    elif len(host) > HOST_MAX:
        problem = f"it is {len(host)} characters long (at most {HOST_MAX})"
    else:
        return host
    raise UsageError(f"invalid host name {host!r}: {problem}", host=host)


def remote_name(text: str) -> tuple[str | None, str]:
    """``HOST:NAME`` as (host, container); a plain ``NAME`` as (None, name).

    Raises:
        UsageError: a bad host part or container name, naming which.
    """
    host, sep, name = text.rpartition(":")
    if not sep:
        return None, container_name(text)
    try:
        host_name(host)
    except UsageError as e:
        raise UsageError(f"{text!r}: {e}", name=text) from None
    return host, container_name(name)


def cgroup_parent(parent: str) -> str:
    """Return ``parent`` if it can hold the containers' cgroups: one or more
    plain directory names joined by '/' (``lxcflow``, ``lxcflow/test-1``).

    Raises:
        UsageError: saying which segment is wrong and why.
    """
    for segment in parent.split("/"):
        problem = _name_problem(segment, CGROUP_SEGMENT_MAX)
        if problem is not None:
            where = "" if segment == parent else f"segment {segment!r}: "
            raise UsageError(f"invalid cgroup parent {parent!r}: {where}{problem}",
                             parent=parent)
    return parent


def seconds(value: float, what: str = "timeout") -> float:
    """Return ``value`` if it is a number of seconds, not negative (NaN is refused).

    Raises:
        UsageError: it is negative or NaN.
    """
    if not value >= 0:
        raise UsageError(f"{what} must be a number of seconds, not negative")
    return value


#: uid_t and gid_t are 32 bits; the last value means "none" to the kernel
ID_MAX = 2**32 - 2


def user_id(value: str | int, what: str = "uid") -> int:
    """A user or group id, 0..4294967294, given as a number.

    Raises:
        UsageError: ``bad uid 'X' (a number 0-4294967294)``.
    """
    text = str(value)
    if (isinstance(value, int) and not isinstance(value, bool)) or _is_digits(text):
        if 0 <= int(value) <= ID_MAX:
            return int(value)
    raise UsageError(f"bad {what} {value!r} (a number 0-{ID_MAX})")


def environment_variable(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` with KEY a variable name (letters, digits, '_'; not
    starting with a digit) -> (KEY, VALUE).

    Raises:
        UsageError: it is not such an assignment.
    """
    name, sep, value = text.partition("=")
    if (not sep or not name or name[0] in _DIGITS
            or not all(ch.isascii() and (ch.isalnum() or ch == "_") for ch in name)):
        raise UsageError(f"{text!r} is not KEY=VALUE with KEY a variable name")
    return name, value


def _is_digits(text: str) -> bool:
    return bool(text) and all(ch in _DIGITS for ch in text)


def duration(value: object) -> float:
    """Seconds from ``"500ms"``, ``"10s"``, ``"5m"``, ``"5min"``, ``"1h"``,
    ``"1d"`` (a decimal number, then its unit) or a plain number of seconds
    (not negative).

    Raises:
        UsageError: ``bad duration X (use e.g. 500ms, 10s, 5m, 1h)``.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if 0 <= value < float("inf"):
            return float(value)
    elif isinstance(value, str):
        text = value.strip()
        rest = text.lstrip("0123456789.")
        number, unit = text[: len(text) - len(rest)], rest.strip()
        whole, _, fraction = number.partition(".")
        if unit in _UNIT_SECONDS and _is_digits(whole) and (not fraction or _is_digits(fraction)):
            value_seconds = float(number) * _UNIT_SECONDS[unit]
            if value_seconds < float("inf"):  # 400 nines are a number, not a duration
                return value_seconds
    raise UsageError(f"bad duration {value!r} (use e.g. 500ms, 10s, 5m, 1h)")


def signal_number(value: str | int) -> int:
    """The number of a signal given by name or number: ``KILL``, ``SIGKILL``,
    ``kill``, ``SIGRTMIN+3``, ``rtmax-1``, ``"9"`` or ``9``, in 1..64.

    Raises:
        UsageError: ``'X' is not a signal number (1-64)`` for a number out of
            range, ``'X' is not a signal name or a number 1-64`` otherwise.
    """
    # _signal is the C module under signal (loaded at interpreter start):
    # signal itself costs an enum import.
    import _signal

    if isinstance(value, int) and not isinstance(value, bool) or _is_digits(str(value)):
        if not 1 <= int(value) <= SIGNAL_MAX:
            raise UsageError(f"{value!r} is not a signal number (1-{SIGNAL_MAX})")
        return int(value)
    name = str(value).upper().removeprefix("SIG")
    low, high = 1, SIGNAL_MAX
    found: object = None
    if name[:6] in ("RTMIN+", "RTMAX-") and _is_digits(name[6:]):
        # Counted from either end of the real-time signals, and within them.
        low, high = int(_signal.SIGRTMIN), int(_signal.SIGRTMAX)
        found = low + int(name[6:]) if name.startswith("RTMIN") else high - int(name[6:])
    elif name.isalnum():  # not SIG_IGN, SIG_DFL, SIG_BLOCK: those are no signals
        found = getattr(_signal, "SIG" + name, None)
    if isinstance(found, int) and low <= found <= high:
        return found
    raise UsageError(f"{value!r} is not a signal name or a number 1-{SIGNAL_MAX}")


def interface_name(name: str) -> str:
    """Return ``name`` if the kernel takes it for a network interface (its
    dev_valid_name(): 1-15 characters, no '/', ':' or blanks, not '.' or
    '..'); control characters are refused too.

    Raises:
        UsageError: it is not such a name.
    """
    if (not 1 <= len(name) <= IFNAME_MAX or name in (".", "..") or not name.isprintable()
            or any(ch in "/:" or ch.isspace() for ch in name)):
        raise UsageError(f"{name!r} is not an interface name (1-{IFNAME_MAX} characters,"
                         " no '/', ':', blanks)")
    return name


def ip_interface(value: str, version: int = 4, *, lxc: bool = False) -> str:
    """``"198.18.0.2/24"`` -> an IPv4 (or IPv6) address with its prefix, as
    ``ADDRESS/PREFIXLEN`` (a netmask stands for the prefix: ``/255.255.255.0``).

    With ``lxc`` it is read as an LXC config writes it: the prefix may be
    left out (24 for IPv4, 64 for IPv6) and an IPv4 address may be followed
    by its broadcast, which is checked and dropped (the prefix implies it).

    Raises:
        UsageError: it is not such an address.
    """
    import ipaddress

    def bad() -> UsageError:
        return UsageError(f"{value!r} is not an IPv{version} address with prefix")

    words = value.split() if lxc else [value]
    if not words or len(words) > (2 if lxc and version == 4 else 1):
        raise bad()
    text = words[0]
    if "/" not in text:
        if not lxc:
            raise bad()
        text = f"{text}/{24 if version == 4 else 64}"
    try:
        interface = ipaddress.ip_interface(text)
        if len(words) == 2:
            ipaddress.IPv4Address(words[1])
    except ValueError:
        raise bad() from None
    if interface.version != version:
        raise bad()
    return str(interface)


def ip_gateway(value: str, version: int = 4) -> str:
    """An IPv4 (or IPv6) gateway address, normalised, or ``auto`` (the
    bridge's own address, as in LXC).

    Raises:
        UsageError: it is neither.
    """
    import ipaddress

    if value == "auto":
        return value
    try:
        address = ipaddress.ip_address(value)
        if address.version == version:
            return str(address)
    except ValueError:
        pass
    raise UsageError(f"{value!r} is not an IPv{version} address or 'auto'")
