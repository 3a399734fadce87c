"""Device rules on cgroup2: a ``BPF_CGROUP_DEVICE`` program, attached to the
container's cgroup with ``BPF_F_ALLOW_MULTI`` (as LXC and crun do), since
cgroup2 has no devices controller.

The rules read as the v1 controller reads its ``devices.allow`` and
``devices.deny`` lines: an ``a`` rule sets the default (``deny a``: deny
all) and forgets what came before it; each other rule is an exception, the
last one that matches deciding. Loading goes through bpf(2) directly: the
program is a few instructions per rule, and ctypes is all it takes.
"""

from __future__ import annotations

import ctypes
import os
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lxcflow.errors import LxcflowError

_RULE_RE = re.compile(r"(a|[bc] (\*|\d+):(\*|\d+)(?: ([rwm]{1,3}))?)")
_TYPES = {"b": 1, "c": 2}  # BPF_DEVCG_DEV_BLOCK, _CHAR
_ACCESS = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE


@dataclass(frozen=True, slots=True)
class DeviceRule:
    allow: bool
    type: int | None  # None: any (an "a" rule)
    major: int | None  # None: *
    minor: int | None
    access: int  # ACC bits


def parse_rule(allow: bool, text: str) -> DeviceRule:
    """One ``devices.allow``/``devices.deny`` value: ``a``, or ``c 1:3 rwm``.

    Raises:
        ValueError: it does not parse.
    """
    match = _RULE_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a device rule (as 'a' or 'c 1:3 rwm')")
    if match[1] == "a":
        return DeviceRule(allow, None, None, None, 7)
    kind, major, minor, access = text.split()[0], match[2], match[3], match[4] or "rwm"
    return DeviceRule(allow, _TYPES[kind], None if major == "*" else int(major),
                      None if minor == "*" else int(minor),
                      sum(_ACCESS[c] for c in set(access)))


def effective(rules: Sequence[DeviceRule]) -> tuple[bool, list[DeviceRule]]:
    """The default (allow?) and the exceptions that still count: an "a"
    rule sets the default and forgets what came before it."""
    default, exceptions = True, list[DeviceRule]()
    for rule in rules:
        if rule.type is None and rule.access == 7:
            default, exceptions = rule.allow, []
        else:
            exceptions.append(rule)
    return default, exceptions


# eBPF encodings (<linux/bpf.h>): one instruction is code, dst|src<<4, off, imm
_LDX_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W
_MOV32_X = 0xBC  # BPF_ALU | BPF_MOV | BPF_X
_AND32_K = 0x54
_RSH32_K = 0x74
_JNE_K = 0x55  # BPF_JMP | BPF_JNE | BPF_K
_MOV64_K = 0xB7
_EXIT = 0x95


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | (src << 4), off, imm)


def program(rules: Sequence[DeviceRule]) -> bytes:
    """The program's instructions: 1 to allow the access, 0 to refuse it.
    The last matching exception decides, so they are tested last first."""
    default, exceptions = effective(rules)
    # r1: struct bpf_cgroup_dev_ctx {u32 access_type (access << 16 | type); u32 major, minor}
    out = [_insn(_LDX_W, 2, 1, 0), _insn(_AND32_K, 2, imm=0xFFFF),  # r2 = type
           _insn(_LDX_W, 3, 1, 0), _insn(_RSH32_K, 3, imm=16),  # r3 = access
           _insn(_LDX_W, 4, 1, 4), _insn(_LDX_W, 5, 1, 8)]  # r4 = major, r5 = minor
    for rule in reversed(exceptions):
        block: list[bytes | tuple[int, int, int]] = []  # tuples: jumps to the next block
        if rule.type is not None:
            block.append((_JNE_K, 2, rule.type))
        if rule.access != 7:
            # what is asked beyond what the rule names: not this rule's
            block += [_insn(_MOV32_X, 0, 3), _insn(_AND32_K, 0, imm=~rule.access & 7),
                      (_JNE_K, 0, 0)]
        if rule.major is not None:
            block.append((_JNE_K, 4, rule.major))
        if rule.minor is not None:
            block.append((_JNE_K, 5, rule.minor))
        block += [_insn(_MOV64_K, 0, imm=int(rule.allow)), _insn(_EXIT)]
        for i, item in enumerate(block):
            if isinstance(item, tuple):
                code, dst, imm = item
                out.append(_insn(code, dst, off=len(block) - i - 1, imm=imm))
            else:
                out.append(item)
    out += [_insn(_MOV64_K, 0, imm=int(default)), _insn(_EXIT)]
    return b"".join(out)


_BPF = 321  # x86_64's bpf(2)
_PROG_LOAD, _PROG_ATTACH = 5, 8
_PROG_TYPE_CGROUP_DEVICE = 15
_CGROUP_DEVICE = 6  # attach type
_F_ALLOW_MULTI = 2


def _bpf(cmd: int, attr: bytes) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(attr, 128)
    rc = libc.syscall(_BPF, cmd, buf, 128)
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(rc)


def attach(cgroup_dir: Path, rules: Sequence[DeviceRule]) -> None:
    """Load the program and attach it to ``cgroup_dir`` (a cgroup2 directory);
    it stays there, with the cgroup, after this returns.

    Raises:
        LxcflowError: the kernel refused it.
    """
    code = program(rules)
    insns = ctypes.create_string_buffer(code, len(code))
    license = ctypes.create_string_buffer(b"GPL")
    # union bpf_attr, BPF_PROG_LOAD: prog_type, insn_cnt, insns, license, ...
    load = struct.pack("<IIQQ", _PROG_TYPE_CGROUP_DEVICE, len(code) // 8,
                       ctypes.addressof(insns), ctypes.addressof(license))
    try:
        prog = _bpf(_PROG_LOAD, load)
    except OSError as e:
        raise LxcflowError(f"cannot load the device program: {e.strerror}") from None
    target = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        # BPF_PROG_ATTACH: target_fd, attach_bpf_fd, attach_type, attach_flags
        _bpf(_PROG_ATTACH, struct.pack("<IIII", target, prog, _CGROUP_DEVICE, _F_ALLOW_MULTI))
    except OSError as e:
        raise LxcflowError(f"cannot attach the device program to {cgroup_dir}: "
                           f"{e.strerror}") from None
    finally:
        os.close(target)
        os.close(prog)
