"""A real distribution's init in a container: Debian bookworm booting systemd
from a debootstrapped root file system, halted and killed as LXC does it.

The tests look inside with lxcflow attach.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Env, cli_on_a_terminal, needs_root

pytestmark = needs_root


def info(lxc: Env, name: str) -> dict:
    return json.loads(lxc.ok("info", "-n", name, "--json"))


def inside(lxc: Env, name: str, *command: str, timeout: float = 30) -> str:
    """What ``command`` prints (stdout and stderr), attached to the container."""
    done = subprocess.run(
        [sys.executable, "-m", "lxcflow", "attach", "-n", name, "--clear-env", "--", *command],
        env=lxc.env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
    )
    return (done.stdout + done.stderr).strip()


def cgroup_dirs(lxc: Env, name: str) -> list[Path]:
    """The container's directories in every hierarchy, name=systemd included."""
    return sorted(Path("/sys/fs/cgroup").glob(f"*/{lxc.paths.cgroup_parent}/{name}"))


@pytest.fixture
def debian(lxc: Env, debian_rootfs: Path) -> str:
    config = lxc.config(
        f"lxc.rootfs.path = {debian_rootfs}\nlxc.uts.name = deb\nlxc.net.0.type = empty\n"
        "lxc.tty.max = 2\n"
    )
    lxc.ok("create", "-n", "deb", "-f", str(config))
    return "deb"


def boot(lxc: Env, name: str) -> str:
    """Start the container's init and wait until systemd says booting is over."""
    lxc.ok("start", "-n", name)
    return boot_state(lxc, name)


def boot_state(lxc: Env, name: str) -> str:
    """What systemd says once booting is over."""
    # --wait: systemctl blocks until the boot has finished, one way or
    # another; it needs systemd's own socket, which comes a moment after the
    # start (in /run inside the container, where no host inotify reaches).
    deadline = time.monotonic() + 30
    while True:
        state = inside(lxc, name, "systemctl", "is-system-running", "--wait")
        if "Failed to connect to bus" not in state or time.monotonic() > deadline:
            return state
        time.sleep(0.05)


def test_systemd_boots_and_halts_cleanly(lxc: Env, debian: str, debian_rootfs: Path) -> None:
    host_name = socket.gethostname()
    assert boot(lxc, debian) in ("running", "degraded")
    assert inside(lxc, debian, "systemd-detect-virt") == "lxc"
    # systemd names the machine after the tree's /etc/hostname, in its own
    # uts namespace: the host's name stays.
    assert inside(lxc, debian, "hostname") == (debian_rootfs / "etc/hostname").read_text().strip()
    assert socket.gethostname() == host_name
    assert any("/init.scope" in str(d) for d in Path("/sys/fs/cgroup").glob(
        f"*/{lxc.paths.cgroup_parent}/{debian}/*")), "systemd made no cgroups of its own"

    t0 = time.monotonic()
    lxc.ok("stop", "-n", debian, "-t", "60")
    took = time.monotonic() - t0

    # systemd took SIGRTMIN+3, shut down and called reboot(2) to halt, which
    # ends a pid namespace's init with SIGINT; a SIGKILL would mean it never
    # understood the request and waited out the grace.
    assert info(lxc, debian)["last_exit"] == {"code": None, "signal": 2}
    assert took < 30, f"the halt took {took:.1f} s"
    assert cgroup_dirs(lxc, debian) == []


def test_a_getty_on_tty1_and_the_boot_in_the_log(lxc: Env, debian: str) -> None:
    """systemd starts container-getty@N on the ttys container_ttys names,
    and writes its boot to the console; both reach the user."""
    assert boot(lxc, debian) in ("running", "degraded")
    with cli_on_a_terminal(lxc, "console", "-n", debian, "-t", "1") as terminal:
        terminal.type(b"\r")  # a getty started before we looked prompts again
        terminal.until(b"login: ", timeout=20)
        terminal.type(b"\x01q")
        assert terminal.wait() == 0
    assert "active" in inside(lxc, debian, "systemctl", "is-active", "container-getty@1")
    log = lxc.ok("logs", "-n", debian)
    assert "Welcome to" in log
    assert "Debian GNU/Linux 12" in log


def test_a_killed_systemd_container_leaves_no_cgroups(lxc: Env, debian: str) -> None:
    assert boot(lxc, debian) in ("running", "degraded")
    lxc.ok("stop", "-n", debian, "-k")
    assert info(lxc, debian)["last_exit"] == {"code": None, "signal": 9}
    assert cgroup_dirs(lxc, debian) == []
    # And it boots again from the same tree.
    assert boot(lxc, debian) in ("running", "degraded")
    lxc.ok("stop", "-n", debian, "-t", "60")
    assert cgroup_dirs(lxc, debian) == []


@pytest.fixture
def keep_up(lxc: Env) -> Iterator[None]:
    """This test's daemon, started by the test with a restart = "always" rule
    on the container (the fixture's cleanup ends it as any test daemon)."""
    rules = lxc.base / "rules"
    rules.mkdir()
    (rules / "keep-up.toml").write_text(
        '[[rule]]\nname = "keep-up"\ncontainers = "deb"\nrestart = "always"\n')
    daemon = subprocess.Popen(
        [sys.executable, "-m", "lxcflow", "daemon", "--rules", str(rules)],
        env=lxc.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while lxc.run("--no-spawn", "ls").returncode != 0:
        assert daemon.poll() is None, "the daemon exited"
        assert time.monotonic() < deadline, "the daemon did not start"
        time.sleep(0.05)
    assert daemon.poll() is None, "another daemon answers: this fixture must come first"
    assert "keep-up" in lxc.ok("rules", "list")
    yield
    daemon.terminate()
    daemon.wait(timeout=30)


def transitions(lxc: Env, name: str) -> list[tuple[str, str]]:
    """Every state change of ``name`` so far: (to, cause), oldest first."""
    out = lxc.ok("monitor", "-n", f"^{name}$", "--since", "0", "--no-follow", "--json")
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [(e["to"], e["cause"]) for e in events if e["kind"] == "transition"]


def until_running_again(lxc: Env, name: str, old_pid: int, within: float = 60) -> int:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        now = info(lxc, name)
        if now["state"] == "RUNNING" and now["pid"] != old_pid:
            return int(now["pid"])
        time.sleep(0.05)
    raise AssertionError(f"{name} did not come back: {info(lxc, name)}")


def test_a_reboot_from_inside_brings_it_back_once(keep_up: None, lxc: Env, debian: str) -> None:
    assert boot(lxc, debian) in ("running", "degraded")
    before = info(lxc, debian)["pid"]
    booted = len(transitions(lxc, debian))
    inside(lxc, debian, "systemctl", "reboot")
    until_running_again(lxc, debian, before)
    assert boot_state(lxc, debian) in ("running", "degraded")
    time.sleep(1)  # room for a policy to (wrongly) start it a second time
    assert transitions(lxc, debian)[booted:] == [
        ("STOPPING", "reboot"), ("STOPPED", "reboot"), ("STARTING", "reboot"),
        ("RUNNING", "kernel"),
    ]
    assert cgroup_dirs(lxc, debian) != []  # the new run's, in every hierarchy


def test_a_halt_from_inside_is_a_stop_no_policy_undoes(
    keep_up: None, lxc: Env, debian: str
) -> None:
    assert boot(lxc, debian) in ("running", "degraded")
    booted = len(transitions(lxc, debian))
    inside(lxc, debian, "systemctl", "poweroff")
    deadline = time.monotonic() + 60
    while info(lxc, debian)["state"] != "STOPPED" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1)  # room for the restart = "always" policy to (wrongly) act
    assert info(lxc, debian)["state"] == "STOPPED"
    assert info(lxc, debian)["last_exit"] == {"code": None, "signal": 2}
    assert transitions(lxc, debian)[booted:] == [("STOPPING", "halt"), ("STOPPED", "halt")]
    assert cgroup_dirs(lxc, debian) == []


def test_stop_r_reboots_and_returns_once_it_runs_again(lxc: Env, debian: str) -> None:
    assert boot(lxc, debian) in ("running", "degraded")
    before = info(lxc, debian)["pid"]
    lxc.ok("stop", "-n", debian, "-r", "-t", "60")
    now = info(lxc, debian)
    assert now["state"] == "RUNNING"
    assert now["pid"] != before
    assert boot_state(lxc, debian) in ("running", "degraded")
    lxc.ok("stop", "-n", debian, "-t", "60")


def test_stop_r_on_an_init_that_ignores_it_times_out(lxc: Env, host_root_config: Path) -> None:
    lxc.ok("create", "-n", "plain", "-f", str(host_root_config))
    lxc.ok("start", "-n", "plain", "--", "sleep", "100000")  # SIGINT: ignored by an init
    r = lxc.run("stop", "-n", "plain", "-r", "-t", "1")
    assert (r.returncode, r.stderr.strip()) == (
        1, "lxcflow stop: container 'plain' did not reboot within 1 s")
    assert info(lxc, "plain")["state"] == "RUNNING"
    r = lxc.run("stop", "-n", "plain", "-r", "-k")
    assert (r.returncode, r.stderr.strip()) == (
        2, "lxcflow stop: give -r (reboot) or -k (kill), not both")
