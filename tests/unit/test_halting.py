"""Which signal asks an init to halt (read off real processes' SigBlk) or
reboot, and how its end through reboot(2) is read."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lxcflow.config import ContainerConfig, parse_config
from lxcflow.daemon.halting import SYSTEMD_HALT, halt_signal, init_end, reboot_signal
from lxcflow.rules.model import Condition
from lxcflow.runstate import ExitStatus
from lxcflow.runtime import proc
from lxcflow.runtime.spec import RunMode
from lxcflow.states import Cause, Event, State

# Blocks the given signals (as systemd blocks SIGRTMIN+3), says so, then waits.
BLOCKER = (
    "import signal, sys; signal.pthread_sigmask(signal.SIG_BLOCK, map(int, sys.argv[1:])); "
    "print('ready', flush=True); sys.stdin.read()"
)


@pytest.fixture
def init() -> Iterator[Callable[..., int]]:
    """A factory of processes blocking some signals; all ended afterwards."""
    started: list[subprocess.Popen[str]] = []

    def start(*blocked: int) -> int:
        p = subprocess.Popen([sys.executable, "-c", BLOCKER, *map(str, blocked)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        started.append(p)
        assert p.stdout is not None
        assert p.stdout.readline() == "ready\n"
        return p.pid

    yield start
    for p in started:
        p.kill()
        p.communicate()


def test_blocks_signal_reads_sigblk(init: Callable[..., int]) -> None:
    pid = init(SYSTEMD_HALT, int(signal.SIGUSR1))
    assert proc.blocks_signal(pid, SYSTEMD_HALT)
    assert proc.blocks_signal(pid, int(signal.SIGUSR1))
    assert not proc.blocks_signal(pid, int(signal.SIGPWR))
    assert not proc.blocks_signal(pid, SYSTEMD_HALT + 1)


def test_blocks_signal_of_a_process_gone() -> None:
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                       capture_output=True, text=True, check=True)
    assert not proc.blocks_signal(int(p.stdout), SYSTEMD_HALT)


def test_an_init_blocking_sigrtmin_3_is_systemd(init: Callable[..., int]) -> None:
    assert halt_signal(None, RunMode.SYSTEM, init(SYSTEMD_HALT)) == int(signal.SIGRTMIN) + 3


def test_other_inits_get_sigpwr(init: Callable[..., int]) -> None:
    assert halt_signal(None, RunMode.SYSTEM, init()) == signal.SIGPWR
    assert halt_signal(None, RunMode.SYSTEM, init(int(signal.SIGPWR) + 1)) == signal.SIGPWR


def test_the_config_wins(init: Callable[..., int]) -> None:
    config = ContainerConfig(file="c", signal_halt=int(signal.SIGUSR1))
    assert halt_signal(config, RunMode.SYSTEM, init(SYSTEMD_HALT)) == signal.SIGUSR1
    assert halt_signal(config, RunMode.APP, init()) == signal.SIGUSR1


def test_an_application_gets_sigterm(init: Callable[..., int]) -> None:
    assert halt_signal(None, RunMode.APP, init(SYSTEMD_HALT)) == signal.SIGTERM


@pytest.mark.parametrize(
    ("mode", "exit", "end"),
    [
        (RunMode.SYSTEM, ExitStatus(None, int(signal.SIGHUP)), Cause.REBOOT),
        (RunMode.SYSTEM, ExitStatus(None, int(signal.SIGINT)), Cause.HALT),
        (RunMode.SYSTEM, ExitStatus(None, int(signal.SIGKILL)), None),
        (RunMode.SYSTEM, ExitStatus(0, None), None),
        (RunMode.SYSTEM, None, None),
        # An application killed by SIGINT is just that: its init is lxcflow's.
        (RunMode.APP, ExitStatus(None, int(signal.SIGINT)), None),
        (RunMode.APP, ExitStatus(None, int(signal.SIGHUP)), None),
    ],
)
def test_how_an_inits_end_is_read(mode: RunMode, exit: ExitStatus | None,
                                  end: Cause | None) -> None:
    assert init_end(mode, exit) is end


def test_the_reboot_signal() -> None:
    assert reboot_signal(None) == signal.SIGINT
    assert reboot_signal(ContainerConfig(file="c")) == signal.SIGINT
    config = parse_config("lxc.signal.reboot = SIGTERM\n", file="c", base_dir=Path("/"))
    assert reboot_signal(config) == signal.SIGTERM
    old = parse_config("lxc.rebootsignal = 15\n", file="c", base_dir=Path("/"))
    assert old.signal_reboot == signal.SIGTERM


@pytest.mark.parametrize("cause", [Cause.REBOOT, Cause.HALT])
def test_a_reboot_or_halt_is_no_failure(cause: Cause) -> None:
    event = Event("deb", State.STOPPING, State.STOPPED, cause, signal=int(signal.SIGINT))
    assert not Condition(exit="failure").holds(State.STOPPED, event)
    killed = Event("deb", State.STOPPING, State.STOPPED, Cause.KERNEL, signal=9)
    assert Condition(exit="failure").holds(State.STOPPED, killed)
