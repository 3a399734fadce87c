"""lxc.apparmor.* decisions, as LXC makes them (this machine has no AppArmor:
the kernel side is faked by what host_state reads)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lxcflow.config import parse_config
from lxcflow.errors import StartFailed
from lxcflow.runtime.apparmor import Decision, Outcome, decide, host_state

LOADED = {"lxc-container-default-cgns", "web-profile"}


def test_without_apparmor_every_key_is_accepted_and_does_nothing() -> None:
    for asked in (None, "generated", "unconfined", "web-profile", "nowhere"):
        decision = decide(asked, False, enabled=False, loaded=set())
        assert decision == Decision(Outcome.NOT_ENABLED)
    assert decide("generated", False, enabled=False, loaded=set()).describe("generated") == \
        "not enabled on this kernel (lxc.apparmor.profile = generated has no effect)"


def test_with_apparmor() -> None:
    assert decide("unconfined", False, enabled=True, loaded=set()).profile is None
    assert decide("web-profile", False, enabled=True, loaded=LOADED) == Decision(
        Outcome.PROFILE, "web-profile")
    # generated (the default) takes LXC's own default profile
    for asked in (None, "generated"):
        assert decide(asked, False, enabled=True, loaded=LOADED).profile == \
            "lxc-container-default-cgns"
    assert decide(None, False, enabled=True, loaded={"lxc-container-default"}).profile == \
        "lxc-container-default"


def test_what_is_not_loaded_refuses_the_start_unless_incomplete_is_allowed() -> None:
    with pytest.raises(StartFailed, match="'web-profile' is not loaded"):
        decide("web-profile", True, enabled=True, loaded=set())
    with pytest.raises(StartFailed, match="lxc.apparmor.allow_incomplete = 1"):
        decide("generated", False, enabled=True, loaded=set())
    assert decide("generated", True, enabled=True, loaded=set()).outcome is Outcome.INCOMPLETE


def test_host_state_reads_the_loaded_profiles(tmp_path: Path) -> None:
    assert host_state(tmp_path / "none") == (False, frozenset())
    (tmp_path / "profiles").write_text("lxc-container-default-cgns (enforce)\n"
                                       "/usr/sbin/ntpd (complain)\n")
    assert host_state(tmp_path) == (True, {"lxc-container-default-cgns", "/usr/sbin/ntpd"})


def test_the_keys_and_their_old_names(tmp_path: Path) -> None:
    config = parse_config("lxc.apparmor.profile = generated\nlxc.apparmor.allow_nesting = 1\n"
                          "lxc.apparmor.allow_incomplete = 1\n", file="c", base_dir=tmp_path)
    assert (config.apparmor_profile, config.apparmor_allow_incomplete) == ("generated", True)
    old = parse_config("lxc.aa_profile = unconfined\nlxc.aa_allow_incomplete = 0\n",
                       file="c", base_dir=tmp_path)
    assert (old.apparmor_profile, old.apparmor_allow_incomplete) == ("unconfined", False)
