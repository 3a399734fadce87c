"""Which signal asks an init to halt, read off real processes' SigBlk."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from lxcflow.config import ContainerConfig
from lxcflow.daemon.halting import SYSTEMD_HALT, halt_signal
from lxcflow.runtime import proc
from lxcflow.runtime.spec import RunMode

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
