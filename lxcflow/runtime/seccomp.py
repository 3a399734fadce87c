"""Seccomp profiles in LXC's format, read here and compiled once by the shim
(``lxcflow-shim seccomp``, shim/seccomp.c) into the BPF program the keeper
loads for a container's init and every attach.

LXC's format: a version line (1 or 2); in version 2 a policy line
(``denylist``/``blacklist``: everything allowed but the rules, whose default
action is kill; ``allowlist``/``whitelist``: only the rules allowed, the rest
killed), each optionally followed by that default action; then rules, one
syscall each with an optional action (``kill``, ``errno N``, ``trap``,
``allow``, ``notify``) and up to six argument comparisons
``[INDEX,VALUE,OP,VALUE2]``, grouped in ``[ARCH]`` sections (``[all]`` is
this machine's arch and its compat ones, i386 and x32 on x86_64; lines
before any section are the native arch's). ``reject_force_umount`` refuses
``umount2`` with MNT_FORCE; ``#`` starts a comment. Version 1 lists the
numbers of the syscalls allowed.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from lxcflow.errors import ConfigError, LxcflowError

#: LXC's common.seccomp, which lxcflow applies when a config names no
#: profile (LXC itself then loads none)
DEFAULT_PROFILE = """\
2
denylist
reject_force_umount  # comment this to allow umount -f;  not recommended
[all]
kexec_load errno 1
open_by_handle_at errno 1
init_module errno 1
finit_module errno 1
delete_module errno 1
"""
DEFAULT_NAME = "<lxcflow's default: LXC's common.seccomp>"

_NATIVE = {"x86_64": ("x86_64", "amd64")}.get(platform.machine(), (platform.machine(),))
#: section name -> the compiler's arch word, on an x86_64 host
_SECTIONS = {"all": "all", **dict.fromkeys(_NATIVE, "native"), "i386": "x86", "i686": "x86",
             "x86": "x86", "x32": "x32"}
_COMPARE = {"SCMP_CMP_NE": "ne", "!=": "ne", "SCMP_CMP_LT": "lt", "<": "lt",
            "SCMP_CMP_LE": "le", "<=": "le", "SCMP_CMP_EQ": "eq", "==": "eq",
            "SCMP_CMP_GE": "ge", ">=": "ge", "SCMP_CMP_GT": "gt", ">": "gt",
            "SCMP_CMP_MASKED_EQ": "masked_eq", "&=": "masked_eq"}
_NAME_RE = re.compile(r"[a-z0-9_]+")
_ARG_RE = re.compile(r"\[([^\]]*)\]")
MNT_FORCE = 1
EACCES = 13


Fail = Callable[[str], NoReturn]


def _action(words: list[str], fail: Fail) -> tuple[str | None, list[str]]:
    """The action at the head of ``words`` (None: none given), and the rest."""
    if not words or words[0].startswith("["):
        return None, words
    head = words[0]
    if head in ("kill", "trap", "allow"):
        return head, words[1:]
    if head == "errno":
        if len(words) < 2 or not words[1].isdigit() or int(words[1]) > 4095:
            fail("errno needs a number (0-4095)")
        return f"errno:{int(words[1])}", words[2:]
    if head == "notify":
        fail("notify needs lxc.seccomp.notify.proxy, which lxcflow does not support: "
             "the syscall would hang")
    fail(f"unknown action {head!r} (kill, errno N, trap, allow, notify)")


def _comparisons(words: list[str], fail: Fail) -> list[str]:
    out: list[str] = []
    text = " ".join(words)
    found = _ARG_RE.findall(text)
    if _ARG_RE.sub("", text).strip():
        fail(f"cannot read {text!r} (comparisons are [INDEX,VALUE,OP,VALUE2])")
    if len(found) > 6:
        fail("at most 6 argument comparisons")
    for item in found:
        parts = [p.strip() for p in item.split(",")]
        if len(parts) == 3:
            parts.append("0")
        if len(parts) != 4 or parts[2] not in _COMPARE or not parts[0].isdigit() \
                or int(parts[0]) > 5:
            fail(f"bad comparison [{item}] (as [1,2,SCMP_CMP_EQ,0])")
        try:
            values = [int(parts[1], 0), int(parts[3], 0)]
        except ValueError:
            fail(f"bad comparison [{item}]: values are numbers")
        out += [parts[0], _COMPARE[parts[2]], *map(str, values)]
    return out


def compiler_input(text: str, file: str) -> str:
    """The compiler's lines for profile ``text`` (read from ``file``).

    Raises:
        ConfigError: at the profile's file:line.
    """
    lines = text.split("\n")
    number = 0

    def fail(reason: str) -> NoReturn:
        raise ConfigError(f"seccomp profile: {reason}", file=file, line=number or None)

    content = [(n, raw.split("#", 1)[0].strip()) for n, raw in enumerate(lines, start=1)]
    content = [(n, line) for n, line in content if line]
    if not content:
        number = 1
        fail("empty (the first line is the version, 1 or 2)")
    number, version = content[0]
    if version not in ("1", "2"):
        fail(f"version {version!r}: lxcflow reads versions 1 and 2")
    out: list[str] = []
    rest = content[1:]
    if version == "1":
        # a list of syscall numbers allowed, the rest killed
        if rest and rest[0][1] in ("whitelist", "allowlist"):
            rest = rest[1:]
        out.append("default kill")
        for number, line in rest:
            if not line.isdigit():
                fail(f"{line!r}: version 1 lists syscall numbers")
            out.append(f"rule {number} native allow #{line}")
        return "\n".join(out) + "\n"
    if not rest:
        number += 1
        fail("no policy line (denylist or allowlist)")
    number, policy_line = rest[0]
    words = policy_line.split()
    if words[0] in ("denylist", "blacklist"):
        given, extra = _action(words[1:], fail)
        default, rule_default = "allow", given or "kill"
    elif words[0] in ("allowlist", "whitelist"):
        given, extra = _action(words[1:], fail)
        default, rule_default = given or "kill", "allow"
    else:
        fail(f"{words[0]!r}: the second line is denylist or allowlist")
    if extra:
        fail(f"{' '.join(extra)!r} after the policy")
    out.append(f"default {default}")
    arch = "native"
    for number, line in rest[1:]:
        if line == "reject_force_umount":
            out.append(f"rule {number} all errno:{EACCES} umount2 1 masked_eq {MNT_FORCE} "
                       f"{MNT_FORCE}")
            continue
        if line.startswith("[") and line.endswith("]") and "," not in line:
            section = line[1:-1].strip().lower()
            # another machine's section has nothing to say here
            arch = _SECTIONS.get(section, "skip")
            continue
        words = line.split()
        name = words[0]
        if not _NAME_RE.fullmatch(name):
            fail(f"{name!r} is not a syscall name")
        action, args = _action(words[1:], fail)
        comparisons = _comparisons(args, fail)
        if arch != "skip":
            out.append(" ".join(["rule", str(number), arch, action or rule_default, name,
                                 *comparisons]))
    return "\n".join(out) + "\n"


#: (cache, profile, its mtime and size) -> its program, as compiled before
_known: dict[tuple[str, str, int, int], Path] = {}


def _identity(profile: Path | None, cache: Path) -> tuple[str, str, int, int]:
    if profile is None:
        return (str(cache), "", 0, 0)
    try:
        st = profile.stat()
    except OSError:
        return (str(cache), str(profile), -1, -1)  # compiled() says why
    return (str(cache), str(profile), st.st_mtime_ns, st.st_size)


def known(profile: Path | None, cache: Path) -> Path | None:
    """The program :func:`compiled` made for this profile as it is now, if
    it is still there: a stat or two, no reading, no hashing."""
    found = _known.get(_identity(profile, cache))
    return found if found is not None and found.exists() else None


def compiled(binary: Path, profile: Path | None, cache: Path) -> Path:
    """The BPF program for ``profile`` (None: LXC's common.seccomp), compiled
    on first use and kept in ``cache`` under a hash of what was compiled.

    Raises:
        ConfigError: the profile cannot be read or does not compile.
    """
    identity = _identity(profile, cache)
    if profile is None:
        text, name = DEFAULT_PROFILE, DEFAULT_NAME
    else:
        name = str(profile)
        try:
            text = profile.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read seccomp profile: {e}", file=name) from None
    source = compiler_input(text, name)
    digest = hashlib.sha256(source.encode()).hexdigest()[:32]
    target = cache / f"{digest}.bpf"
    if target.exists():
        _known[identity] = target
        return target
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    done = subprocess.run([str(binary), "seccomp"], input=source.encode(), capture_output=True)
    if done.returncode != 0 or not done.stdout:
        said = done.stderr.decode(errors="replace").strip() or "no program"
        match = re.fullmatch(r"error (\d+): (.*)", said.splitlines()[-1])
        if match:
            line = int(match[1])
            raise ConfigError(f"seccomp profile: {match[2]}", file=name, line=line or None)
        raise LxcflowError(f"cannot compile seccomp profile {name}: {said}")
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(done.stdout)
    os.replace(tmp, target)
    _known[identity] = target
    return target
