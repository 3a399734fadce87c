"""Rules through the real CLI: ``rules check``, ``rules list``, a daemon
with ``--rules``, ``wait --thaw`` and ``info`` on a container a rule froze."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Env, needs_root

pytestmark = needs_root

GOOD = """
[[rule]]
name = "idle"
containers = "idle"
sample = { cpu_below = "5%", for = "300ms", every = "100ms" }
actions = ["freeze"]
"""


def test_rules_check_accepts_the_examples(lxc: Env) -> None:
    examples = Path(__file__).parents[2] / "rules"
    r = lxc.run("rules", "check", str(examples))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == f"11 rules ok in {examples}"


def test_rules_check_reports_each_mistake_at_file_line(lxc: Env) -> None:
    rules = lxc.base / "rules"
    rules.mkdir()
    (rules / "a.toml").write_text(GOOD + '\n[[rule]]\nname = "b"\nevery = "10 parsecs"\n'
                                  'actions = ["stop"]\n')
    (rules / "b.toml").write_text('[[rule]]\nname = "c"\non = "RUNNING"\n'
                                  'actions = [{ kill = "SIGNOPE" }]\n')
    (rules / "notes.txt").write_text("not a rules file: ignored")
    r = lxc.run("rules", "check", str(rules))
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.splitlines() == [
        f"lxcflow rules: {rules}/a.toml:10: every: bad duration '10 parsecs' "
        "(use e.g. 500ms, 10s, 5m, 1h)",
        f"lxcflow rules: {rules}/b.toml:4: unknown signal: 'SIGNOPE' is not a signal name "
        "or a number 1-64",
    ]
    r = lxc.run("rules", "check", str(lxc.base / "nonexistent"))
    assert r.returncode == 2
    assert r.stderr.strip() == f"lxcflow rules: {lxc.base / 'nonexistent'}: no such directory"


def test_daemon_refuses_a_rules_directory_that_does_not_exist(lxc: Env) -> None:
    r = lxc.run("daemon", "--rules", str(lxc.base / "nope"))
    assert r.returncode == 2
    assert r.stderr.strip() == f"lxcflow daemon: --rules {lxc.base / 'nope'}: no such directory"
    r = lxc.run("daemon", "--restart-budget", "0")
    assert r.returncode == 2
    assert "--restart-budget must be positive" in r.stderr


@pytest.fixture
def ruled(lxc: Env) -> Iterator[Path]:
    """A daemon of the test's own, on a rules directory of its own."""
    rules = lxc.base / "rules"
    rules.mkdir()
    (rules / "idle.toml").write_text(GOOD)
    ready_r, ready_w = os.pipe()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "lxcflow", "daemon", "--rules", str(rules),
         "--ready-fd", str(ready_w)],
        env=lxc.env, pass_fds=(ready_w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(ready_w)
    try:
        with os.fdopen(ready_r, "rb") as ready:
            assert ready.read() == b"ready\n"
        yield rules
    finally:
        daemon.terminate()
        daemon.wait(timeout=20)


def test_rule_freezes_an_idle_container_and_wait_thaw_wakes_it(lxc: Env, ruled: Path) -> None:
    config = lxc.config("lxc.uts.name = idle\nlxc.init.cmd = sleep 1000\n")
    lxc.ok("create", "-n", "idle", "-f", str(config))
    lxc.ok("start", "-n", "idle")
    lxc.ok("wait", "-n", "idle", "-s", "FROZEN", "-t", "10")
    info = json.loads(lxc.ok("info", "-n", "idle", "--json"))
    assert info["frozen_by"] == "rule:idle"
    text = lxc.ok("info", "-n", "idle")
    assert "Frozen by:      rule:idle" in text
    listed = lxc.ok("rules", "list")
    assert listed.splitlines()[0] == (
        f"idle  [cpu < 5% for 0.3 s (sampled every 0.1 s)]  containers idle  "
        f"({ruled / 'idle.toml'}:2)")
    reached = json.loads(lxc.ok("wait", "--thaw", "-n", "idle", "-s", "RUNNING", "-t", "5",
                                "--json"))
    assert reached == {"idle": "RUNNING"}
    events = [json.loads(line) for line in
              lxc.ok("monitor", "--since", "0", "--no-follow", "--json").splitlines()]
    freezing = next(e for e in events if e["to"] == "FREEZING")
    assert freezing["cause"] == "rule:idle"
    thawed = next(e for e in events if e["from"] == "FROZEN" and e["to"] == "RUNNING")
    assert thawed["cause"] == "command"
    # A broken edit is reported by rules list, and the last good rule stays.
    (ruled / "idle.toml").write_text(GOOD.replace('"freeze"', '"freze"'))
    lxc.ok("wait", "-n", "idle", "-s", "FROZEN", "-t", "10")
    listed = lxc.ok("rules", "list")
    assert "error (last good version kept): " in listed
    assert "idle.toml:6: unknown action 'freze'" in listed
    lxc.ok("stop", "-n", "idle", "-k")


def test_who_froze_a_container_survives_a_daemon_restart(lxc: Env) -> None:
    config = lxc.config("lxc.uts.name = f\nlxc.init.cmd = sleep 1000\n")
    lxc.ok("create", "-n", "f", "-f", str(config))
    lxc.ok("start", "-n", "f")
    lxc.ok("freeze", "-n", "f")
    lxc.kill_daemon(signal.SIGKILL)
    info = json.loads(lxc.ok("info", "-n", "f", "--json"))  # a new daemon adopts it
    assert (info["state"], info["frozen_by"]) == ("FROZEN", "user")
    lxc.ok("unfreeze", "-n", "f")
    assert not (lxc.paths.run_dir("f") / "frozen_by").exists()
    lxc.ok("stop", "-n", "f", "-k")
