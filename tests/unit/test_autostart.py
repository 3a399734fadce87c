"""Which containers an autostart takes, and in which order (lxc-autostart's rules)."""

from __future__ import annotations

from lxcflow.config import ContainerConfig
from lxcflow.daemon.autostart import Entry, select


def config(auto: bool = True, order: int = 0, delay: int = 0,
           groups: tuple[str, ...] = ()) -> ContainerConfig:
    return ContainerConfig(file="c", start_auto=auto, start_order=order, start_delay=delay,
                           groups=groups)


CONFIGS = {
    "web": config(order=10, groups=("web",)),
    "db": config(order=-5, delay=3),
    "cache": config(),
    "app": config(),
    "manual": config(auto=False),
    "both": config(order=1, groups=("web", "onboot")),
}


def test_by_default_those_in_no_group_in_ascending_order_ties_by_name() -> None:
    assert select(CONFIGS) == [
        Entry("db", -5, 3, ()), Entry("app", 0, 0, ()), Entry("cache", 0, 0, ()),
    ]


def test_groups_choose_those_in_any_of_them() -> None:
    assert [e.name for e in select(CONFIGS, groups=["web"])] == ["both", "web"]
    assert [e.name for e in select(CONFIGS, groups=["onboot", "nope"])] == ["both"]
    assert select(CONFIGS, groups=["nope"]) == []


def test_all_takes_every_autostart_container_but_never_one_without_it() -> None:
    assert [e.name for e in select(CONFIGS, every=True)] == [
        "db", "app", "cache", "both", "web"]
    assert "manual" not in [e.name for e in select(CONFIGS, groups=["web"], every=True)]
