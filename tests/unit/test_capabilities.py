"""lxc.cap.drop / lxc.cap.keep -> the mask the keeper bounds a container to."""

from __future__ import annotations

from pathlib import Path

import pytest

from lxcflow.config import parse_config
from lxcflow.config.values import CAPABILITIES
from lxcflow.errors import ConfigError
from lxcflow.runtime.capabilities import DEFAULT_DROP, kept_mask

EVERY = (1 << len(CAPABILITIES)) - 1


def mask(text: str, tmp_path: Path) -> int:
    return kept_mask(parse_config(text, file="c", base_dir=tmp_path))


def bits(*names: str) -> int:
    return sum(1 << CAPABILITIES.index(n) for n in names)


def test_no_cap_key_drops_lxcs_common_set(tmp_path: Path) -> None:
    assert mask("", tmp_path) == EVERY & ~bits(*DEFAULT_DROP)
    assert CAPABILITIES.index("sys_module") == 16  # the kernel's numbering
    assert CAPABILITIES.index("checkpoint_restore") == 40


def test_drop_and_keep_in_any_spelling(tmp_path: Path) -> None:
    assert mask("lxc.cap.drop = CAP_SYS_ADMIN net_raw\n", tmp_path) == \
        EVERY & ~bits("sys_admin", "net_raw")
    assert mask("lxc.cap.keep = Chown cap_kill\n", tmp_path) == bits("chown", "kill")


def test_a_cleared_drop_list_drops_nothing(tmp_path: Path) -> None:
    """LXC's userns.conf does this: what it asked for, not the default."""
    assert mask("lxc.cap.drop = sys_time\nlxc.cap.drop =\n", tmp_path) == EVERY


def test_keep_none_keeps_nothing_and_forgets_what_came_before(tmp_path: Path) -> None:
    assert mask("lxc.cap.keep = none\n", tmp_path) == 0
    assert mask("lxc.cap.keep = chown\nlxc.cap.keep = none kill\n", tmp_path) == bits("kill")


@pytest.mark.parametrize(("text", "line", "reason"), [
    ("lxc.cap.drop = sys_nonsense\n", 1, "bad value for lxc.cap.drop: 'sys_nonsense' is not a "
     "capability (as sys_admin or CAP_SYS_ADMIN)"),
    ("lxc.cap.drop = sys_time\nlxc.cap.keep = chown\n", 2, "lxc.cap.keep: lxc.cap.drop and "
     "lxc.cap.keep cannot both be set (clear the other with 'lxc.cap.drop =')"),
    ("lxc.cap.drop = none\n", 1, "lxc.cap.drop: 'none' is a word of lxc.cap.keep only"),
])
def test_bad_cap_lines_name_file_and_line(tmp_path: Path, text: str, line: int,
                                         reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, file="c", base_dir=tmp_path)
    assert str(caught.value) == f"c:{line}: {reason}"
