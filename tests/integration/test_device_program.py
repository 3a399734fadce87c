"""The cgroup2 device program on this machine's cgroup2 mount: a process in
a cgroup it is attached to may open what its rules allow and nothing else;
mknod works where 'm' is allowed."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lxcflow.runtime import device_program
from lxcflow.runtime.device_program import parse_rule
from lxcflow.runtime.device_rules import DEFAULT_RULES
from tests.integration.conftest import needs_root

pytestmark = needs_root

CGROUP2 = next((p for p in (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))
                if (p / "cgroup.controllers").exists()), None)

PROBE = """
import os, sys
for path in sys.argv[2:]:
    try:
        os.close(os.open(path, os.O_RDONLY))
        print(path, "opens")
    except OSError as e:
        print(path, e.strerror)
node = sys.argv[1] + "/loop0"
try:
    os.mknod(node, 0o600 | 0o060000, os.makedev(7, 0))
    print("mknod ok")
    os.close(os.open(node, os.O_RDONLY))
    print("loop0 opens")
except OSError as e:
    print("loop0", e.strerror)
"""


@pytest.fixture
def cgroup() -> Iterator[Path]:
    if CGROUP2 is None:
        pytest.skip("no cgroup2 mount")
    path = CGROUP2 / f"lxcflow-test-bpf-{secrets.token_hex(4)}"
    path.mkdir()
    try:
        yield path
    finally:
        for pid in (path / "cgroup.procs").read_text().split():
            os.kill(int(pid), signal.SIGKILL)
        path.rmdir()


def probe(cgroup: Path, tmp: Path, *paths: str) -> list[str]:
    def join() -> None:
        (cgroup / "cgroup.procs").write_text("0")

    done = subprocess.run([sys.executable, "-c", PROBE, str(tmp), *paths], preexec_fn=join,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_lxcs_list_as_a_device_program(cgroup: Path, tmp_path: Path) -> None:
    device_program.attach(cgroup, [parse_rule(k == "devices.allow", v) for k, v in DEFAULT_RULES])
    assert probe(cgroup, tmp_path, "/dev/null", "/dev/urandom", "/dev/kmsg") == [
        "/dev/null opens", "/dev/urandom opens", "/dev/kmsg Operation not permitted",
        "mknod ok", "loop0 Operation not permitted"]


def test_the_last_matching_rule_decides_and_a_resets(cgroup: Path, tmp_path: Path) -> None:
    rules = [parse_rule(True, "c 1:9 rwm"), parse_rule(False, "a"),  # forgotten by 'a'
             parse_rule(True, "c 1:* rw"), parse_rule(False, "c 1:5 rwm"),
             parse_rule(True, "b *:* m")]
    device_program.attach(cgroup, rules)
    assert probe(cgroup, tmp_path, "/dev/null", "/dev/zero", "/dev/tty") == [
        "/dev/null opens", "/dev/zero Operation not permitted",
        "/dev/tty Operation not permitted", "mknod ok", "loop0 Operation not permitted"]
