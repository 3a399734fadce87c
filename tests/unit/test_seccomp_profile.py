"""LXC's seccomp profile format -> what the shim's compiler reads."""

from __future__ import annotations

import pytest

from lxcflow.errors import ConfigError
from lxcflow.runtime.seccomp import DEFAULT_PROFILE, compiler_input


def rules(text: str) -> list[str]:
    return compiler_input(text, "p").splitlines()


def test_lxcs_common_profile() -> None:
    assert rules(DEFAULT_PROFILE) == [
        "default allow",
        "rule 3 all errno:13 umount2 1 masked_eq 1 1",  # reject_force_umount
        "rule 5 all errno:1 kexec_load", "rule 6 all errno:1 open_by_handle_at",
        "rule 7 all errno:1 init_module", "rule 8 all errno:1 finit_module",
        "rule 9 all errno:1 delete_module"]


def test_denylist_lines_without_an_action_kill_and_sections_pick_arches() -> None:
    text = ("2\nblacklist\nmount  # before any section: this machine's arch\n"
            "[x86_64]\nptrace trap\n[i386]\nsocketcall errno 38\n[x32]\nkexec_load\n"
            "[arm64]\nreboot\n[ALL]\nswapon errno 1 [0,0,SCMP_CMP_NE,0] [1, 4, &=, 4]\n")
    assert rules(text) == [
        "default allow", "rule 3 native kill mount", "rule 5 native trap ptrace",
        "rule 7 x86 errno:38 socketcall", "rule 9 x32 kill kexec_load",
        # another machine's section says nothing here
        "rule 13 all errno:1 swapon 0 ne 0 0 1 masked_eq 4 4"]


def test_allowlists_kill_the_rest_unless_told_otherwise() -> None:
    assert rules("2\nwhitelist\nread\nwrite errno 0\n") == [
        "default kill", "rule 3 native allow read", "rule 4 native errno:0 write"]
    assert rules("2\nallowlist errno 1\n[all]\nread\n")[:1] == ["default errno:1"]


def test_version_1_lists_numbers_allowed() -> None:
    assert rules("1\nwhitelist\n0\n1\n") == [
        "default kill", "rule 3 native allow #0", "rule 4 native allow #1"]


@pytest.mark.parametrize(("text", "line", "reason"), [
    ("", 1, "empty (the first line is the version, 1 or 2)"),
    ("3\ndenylist\n", 1, "version '3': lxcflow reads versions 1 and 2"),
    ("2\ngreylist\n", 2, "'greylist': the second line is denylist or allowlist"),
    ("2\ndenylist\n[all]\nmount explode\n", 4,
     "unknown action 'explode' (kill, errno N, trap, allow, notify)"),
    ("2\ndenylist\nmount errno\n", 3, "errno needs a number (0-4095)"),
    ("2\ndenylist\nmount notify\n", 3, "notify needs lxc.seccomp.notify.proxy, which lxcflow "
     "does not support: the syscall would hang"),
    ("2\ndenylist\nmount kill [7,0,SCMP_CMP_EQ,0]\n", 3,
     "bad comparison [7,0,SCMP_CMP_EQ,0] (as [1,2,SCMP_CMP_EQ,0])"),
    ("2\ndenylist\nMount\n", 3, "'Mount' is not a syscall name"),
    ("1\n0\nread\n", 3, "'read': version 1 lists syscall numbers"),
])
def test_bad_profiles_name_the_line(text: str, line: int, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        compiler_input(text, "p")
    assert str(caught.value) == f"p:{line}: seccomp profile: {reason}"
