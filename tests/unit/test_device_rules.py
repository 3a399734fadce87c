"""Which device rules reach the v1 devices controller."""

from __future__ import annotations

from pathlib import Path

from lxcflow.config import parse_config
from lxcflow.runtime.device_rules import DEFAULT_RULES, device_rules


def rules(text: str, tmp_path: Path) -> list[tuple[str, str, int | None]]:
    return device_rules(parse_config(text, file="c", base_dir=tmp_path))


def test_lxcs_list_when_the_config_has_none(tmp_path: Path) -> None:
    assert rules("lxc.cgroup.memory.limit_in_bytes = 1G\n", tmp_path) == [
        (k, v, None) for k, v in DEFAULT_RULES]
    assert DEFAULT_RULES[0] == ("devices.deny", "a")


def test_the_native_set_wins_and_the_other_stands_in_only_alone(tmp_path: Path) -> None:
    both = ("lxc.cgroup2.devices.deny = a\nlxc.cgroup.devices.deny = a\n"
            "lxc.cgroup.devices.allow = c 1:3 rwm\nlxc.cgroup2.devices.allow = c 1:5 rwm\n")
    assert rules(both, tmp_path) == [("devices.deny", "a", 2), ("devices.allow", "c 1:3 rwm", 3)]
    alone = "lxc.cgroup2.devices.deny = a\nlxc.cgroup2.devices.allow = c 1:5 rwm\n"
    assert rules(alone, tmp_path) == [("devices.deny", "a", 1),
                                      ("devices.allow", "c 1:5 rwm", 2)]
