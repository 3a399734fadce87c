"""Device rules as the cgroup2 device program reads them."""

from __future__ import annotations

import pytest

from lxcflow.runtime.device_program import DeviceRule, effective, parse_rule, program


def test_rules_parse_as_the_v1_controller_writes_them() -> None:
    assert parse_rule(False, "a") == DeviceRule(False, None, None, None, 7)
    assert parse_rule(True, "c 1:3 rwm") == DeviceRule(True, 2, 1, 3, 7)
    assert parse_rule(True, "b *:* m") == DeviceRule(True, 1, None, None, 1)
    assert parse_rule(True, "c 136:* rw") == DeviceRule(True, 2, 136, None, 6)
    assert parse_rule(True, "c 10:200") == DeviceRule(True, 2, 10, 200, 7)  # access: all
    for bad in ("x 1:3 rwm", "c 1 rwm", "c 1:3 rwx", ""):
        with pytest.raises(ValueError, match="is not a device rule"):
            parse_rule(True, bad)


def test_an_a_rule_sets_the_default_and_forgets_what_came_before() -> None:
    rules = [parse_rule(True, "c 1:3 rwm"), parse_rule(False, "a"), parse_rule(True, "c 1:5 r")]
    assert effective(rules) == (False, [parse_rule(True, "c 1:5 r")])
    assert effective([]) == (True, [])  # no rule: everything, as a fresh v1 cgroup


def test_the_program_has_a_block_per_exception_and_ends_with_the_default() -> None:
    code = program([parse_rule(False, "a"), parse_rule(True, "c 1:3 rwm")])
    insns = [code[i:i + 8] for i in range(0, len(code), 8)]
    # 6 loads; type, major, minor tests, r0 = 1, exit; r0 = 0 (the default), exit
    assert len(insns) == 6 + 5 + 2
    assert insns[-2][0] == 0xB7
    assert insns[-2][4:] == b"\0\0\0\0"
    assert insns[-1][0] == 0x95
