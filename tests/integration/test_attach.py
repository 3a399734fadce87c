"""lxcflow attach: a command inside a running container, as lxc-attach runs
one: its namespaces, cgroup and environment, the caller's stdio or a pty,
signals and the exit code passed on."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Env, Terminal, cli_on_a_terminal, needs_root

pytestmark = needs_root


def attach(lxc: Env, *args: str, stdin: bytes = b"",
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``lxcflow attach -n box ARGS`` with ``stdin`` as its input (a pipe, not a tty)."""
    return subprocess.run([sys.executable, "-m", "lxcflow", "attach", "-n", "box", *args],
                          env={**lxc.env, **(env or {})}, input=stdin.decode(),
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def box(lxc: Env) -> str:
    """A running container on the host's root, `sleep` as its init."""
    config = lxc.config("lxc.uts.name = box\nlxc.environment = FROM_CONFIG=yes\n")
    lxc.ok("create", "-n", "box", "-f", str(config))
    lxc.ok("start", "-n", "box", "--", "sleep", "100000")
    return "box"


def container_pids(lxc: Env) -> list[int]:
    return [p["pid"] for p in json.loads(lxc.ok("ps", "-n", "box", "--json"))]


def test_the_command_runs_inside_every_namespace_and_the_cgroup(lxc: Env, box: str) -> None:
    init = json.loads(lxc.ok("info", "-n", box, "--json"))["pid"]
    r = attach(lxc, "--", "sh", "-c",
               "hostname; grep NSpid /proc/self/status; cat /proc/1/cmdline | tr '\\0' ' ';"
               " echo; readlink /proc/self/ns/mnt /proc/self/ns/pid_for_children"
               " /proc/self/ns/cgroup; cat /proc/self/cgroup")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "box"
    assert len(lines[1].split()) == 2  # one pid: the container's /proc knows no other
    assert lines[2].strip() == "sleep 100000"  # PID 1 is the container's init
    ns = [os.readlink(f"/proc/{init}/ns/{kind}") for kind in ("mnt", "pid", "cgroup")]
    assert lines[3:6] == ns
    # In the init's cgroup namespace, at its root, which the host sees as the
    # container's cgroup (cgroup2: the only tree on a unified host, beside v1
    # on a hybrid).
    assert [ln for ln in lines[6:] if ln.startswith("0::")] == ["0::/"]
    host_view = Path(f"/proc/{init}/cgroup").read_text().splitlines()
    assert [ln for ln in host_view if ln.startswith("0::")] == [
        f"0::/{lxc.paths.cgroup_parent}/box"]


def test_stdin_stdout_and_exit_codes_pass_through(lxc: Env, box: str) -> None:
    r = attach(lxc, "--", "sh", "-c", "read line; echo \"got $line\"; echo oops >&2; exit 3",
               stdin=b"hello\n")
    assert (r.returncode, r.stdout, r.stderr) == (3, "got hello\n", "oops\n")
    assert attach(lxc, "--", "sh", "-c", "kill -9 $$").returncode == 128 + 9
    missing = attach(lxc, "--", "/no/such/command")
    assert (missing.returncode, missing.stderr) == (
        127, "lxcflow attach: cannot execute /no/such/command: No such file or directory\n")
    not_executable = attach(lxc, "--", "/proc/version")  # mode 0444
    assert not_executable.returncode == 126
    assert "Permission denied" in not_executable.stderr


def test_environment_in_lxcs_order(lxc: Env, box: str) -> None:
    show = ("--", "sh", "-c", 'echo "$container $FROM_CONFIG ${MINE-unset} ${SET-unset}"')
    kept = attach(lxc, *show, env={"MINE": "kept"})
    assert kept.stdout == "lxc yes kept unset\n"
    cleared = attach(lxc, "--clear-env", "-v", "SET=1", "-v", "FROM_CONFIG=over", *show,
                     env={"MINE": "kept"})
    assert cleared.stdout == "lxc over unset 1\n"


def test_user_group_and_directory(lxc: Env, box: str) -> None:
    r = attach(lxc, "-u", "65534", "-g", "65534", "--cwd", "/tmp", "--", "sh", "-c",
               "id -u; id -g; id -G; pwd")
    assert r.stdout.split() == ["65534", "65534", "65534", "/tmp"], r.stderr
    # Without --cwd: the caller's directory where the container has it, else /.
    here = subprocess.run([sys.executable, "-m", "lxcflow", "attach", "-n", "box", "--",
                           "pwd"], env=lxc.env, cwd=lxc.base, input="", capture_output=True,
                          text=True, timeout=60)
    assert here.stdout == f"{lxc.base}\n"
    strict = attach(lxc, "--cwd", "/no/such/dir", "--", "pwd")
    assert (strict.returncode, strict.stderr) == (
        125, "lxcflow attach: cannot change directory to /no/such/dir: "
             "No such file or directory\n")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("-u", "-1", "--", "true"), 2, "bad uid '-1' (a number 0-4294967294)"),
        (("-g", "x", "--", "true"), 2, "bad gid 'x' (a number 0-4294967294)"),
        (("-v", "1X=2", "--", "true"), 2, "'1X=2' is not KEY=VALUE with KEY a variable name"),
        (("--cwd", "tmp", "--", "true"), 2,
         "--cwd 'tmp' is not an absolute path inside the container"),
        (("--clear-env", "--keep-env", "--", "true"), 2,
         "give --clear-env or --keep-env, not both"),
    ],
)
def test_bad_input_is_one_line(lxc: Env, box: str, args: tuple[str, ...], code: int,
                               message: str) -> None:
    r = attach(lxc, *args)
    assert (r.returncode, r.stderr) == (code, f"lxcflow attach: {message}\n")
    assert container_pids(lxc) == [json.loads(lxc.ok("info", "-n", box, "--json"))["pid"]]


def test_a_frozen_stopped_or_unknown_container_is_refused(lxc: Env, box: str) -> None:
    lxc.ok("freeze", "-n", box)
    r = attach(lxc, "--", "true")
    assert (r.returncode, r.stderr) == (
        1, "lxcflow attach: container 'box' is FROZEN: unfreeze it first\n")
    lxc.ok("unfreeze", "-n", box)
    lxc.ok("stop", "-n", box, "-k")
    r = attach(lxc, "--", "true")
    assert (r.returncode, r.stderr) == (1, "lxcflow attach: container 'box' is not running\n")
    r = subprocess.run([sys.executable, "-m", "lxcflow", "attach", "-n", "nope", "--", "true"],
                       env=lxc.env, input="", capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stderr) == (1, "lxcflow attach: container 'nope' does not exist\n")


def test_it_works_on_a_container_adopted_after_a_daemon_restart(lxc: Env, box: str) -> None:
    lxc.kill_daemon(signal.SIGKILL)
    r = attach(lxc, "--", "hostname")
    assert (r.returncode, r.stdout) == (0, "box\n"), r.stderr


def test_signals_to_the_cli_reach_the_command(lxc: Env, box: str) -> None:
    cli = subprocess.Popen(
        [sys.executable, "-m", "lxcflow", "attach", "-n", "box", "--", "sh", "-c",
         "trap 'echo caught; exit 9' INT; echo ready; while :; do sleep 0.05; done"],
        env=lxc.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    assert cli.stdout is not None
    assert cli.stdout.readline() == "ready\n"
    cli.send_signal(signal.SIGINT)
    assert cli.wait(timeout=10) == 9
    assert cli.stdout.read() == "caught\n"


def test_a_command_whose_caller_dies_is_hung_up(lxc: Env, box: str) -> None:
    init = json.loads(lxc.ok("info", "-n", box, "--json"))["pid"]
    cli = subprocess.Popen(
        [sys.executable, "-m", "lxcflow", "attach", "-n", "box", "--", "sh", "-c",
         "echo ready; exec sleep 1000"],
        env=lxc.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    assert cli.stdout is not None
    assert cli.stdout.readline() == "ready\n"
    assert len(container_pids(lxc)) == 2
    cli.kill()  # no chance to pass anything on: the daemon sees the hang-up
    cli.wait()
    deadline = time.monotonic() + 10
    while container_pids(lxc) != [init] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert container_pids(lxc) == [init]


def test_on_a_terminal_the_command_gets_a_pty(lxc: Env, box: str) -> None:
    """The CLI on a real terminal (a pty this test holds): raw mode, the window
    size and its changes, ^C to the foreground command only, the exit code."""
    with cli_on_a_terminal(lxc, "attach", "-n", "box", "--", "sh", "-i") as terminal:
        talk_to_a_shell(terminal)


def until_in_the_foreground(argv: list[str], timeout: float = 15) -> None:
    """Until a process running ``argv`` is its terminal's foreground group
    (before that, a ^C would reach the shell that is starting it)."""
    wanted = ("\0".join(argv) + "\0").encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in Path("/proc").iterdir():
            try:
                if (proc / "cmdline").read_bytes() == wanted:
                    fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                    if fields[2] == fields[5]:  # pgrp == tpgid
                        return
            except OSError:
                continue
        time.sleep(0.02)
    raise AssertionError(f"{argv} never ran in the foreground")


def talk_to_a_shell(terminal: Terminal) -> None:
    termios.tcsetwinsize(terminal.master, (30, 100))
    terminal.until(b"# ")  # the shell's prompt: what is typed now reaches it
    terminal.type(b"tty; stty size; echo $((6*7))\n")
    seen = terminal.until(b"42\r\n")
    assert b"/dev/pts/" in seen
    assert b"30 100\r\n" in seen
    termios.tcsetwinsize(terminal.master, (40, 120))
    time.sleep(0.2)  # the CLI passes SIGWINCH on
    terminal.type(b"stty size; sleep 30; echo after\n")
    terminal.until(b"40 120\r\n")
    until_in_the_foreground(["sleep", "30"])
    terminal.type(b"\x03")  # ^C: the sleep, not the shell
    terminal.until(b"after\r\n")
    terminal.type(b"exit 5\n")
    assert terminal.wait() == 5


def test_a_terminal_session_whose_cli_is_told_to_go_ends_cleanly(lxc: Env, box: str) -> None:
    """SIGTERM to the CLI on a terminal: the terminal put back, no traceback,
    128+SIGHUP as the exit code, and the command hung up."""
    init = json.loads(lxc.ok("info", "-n", box, "--json"))["pid"]
    with cli_on_a_terminal(lxc, "attach", "-n", "box", "--", "sh", "-c",
                           "echo ready; exec sleep 1000") as terminal:
        terminal.until(b"ready")
        os.kill(terminal.pid, signal.SIGTERM)
        assert terminal.wait() == 128 + signal.SIGHUP
        try:
            while select.select([terminal.master], [], [], 0.2)[0]:
                terminal.seen += os.read(terminal.master, 4096)
        except OSError:
            pass  # the terminal's last holder is gone
        assert b"Traceback" not in terminal.seen, terminal.seen
    deadline = time.monotonic() + 10
    while container_pids(lxc) != [init] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert container_pids(lxc) == [init]
