"""The init's own pidfd: its exit and status, while its keeper still lives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import trio

from lxcflow.runtime import proc
from lxcflow.runtime.shim import Shim

# A keeper stand-in: forks an "init" that exits 3, prints its pid, reaps it
# after DELAY seconds, then lives on until killed.
KEEPER = """
import os, sys, time
init = os.fork()
if init == 0:
    os._exit(3)
print(init, flush=True)
time.sleep(float(sys.argv[1]))
os.waitpid(init, 0)
time.sleep(60)
"""


def start_keeper(reap_after: float) -> tuple[subprocess.Popen[str], int]:
    """The stand-in and its init's pid (a zombie, or about to be one)."""
    keeper = subprocess.Popen([sys.executable, "-c", KEEPER, str(reap_after)],
                              stdout=subprocess.PIPE, text=True)
    assert keeper.stdout is not None
    return keeper, int(keeper.stdout.readline())


@pytest.mark.parametrize(("reap_after", "ask_after"), [(0.1, 0.4), (0.4, 0.0)])
async def test_init_status_comes_from_the_kernel_before_the_keeper_exits(
    reap_after: float, ask_after: float,
) -> None:
    """Asked after the reap, or before it (then it waits for the reap)."""
    try:
        proc.exit_status(os.pidfd_open(os.getpid()))
    except NotImplementedError:
        pytest.skip("this kernel keeps no exit status for pidfds (before 6.15)")
    keeper, init = start_keeper(reap_after)
    try:
        init_pidfd = os.pidfd_open(init)  # a zombie until the stand-in reaps it
        shim = Shim(keeper.pid, os.pidfd_open(keeper.pid), init, init_pidfd, own_child=False)
        with trio.fail_after(5):
            await shim.init_exited()
            await trio.sleep(ask_after)
            began = trio.current_time()
            status = await shim.init_status()
        assert status is not None
        assert os.WIFEXITED(status)
        assert os.WEXITSTATUS(status) == 3
        # It waited for the reap (EPOLLHUP), not longer, and the keeper lives on.
        assert trio.current_time() - began < reap_after + 0.5
        assert keeper.poll() is None
        shim.close()
    finally:
        keeper.send_signal(signal.SIGKILL)
        keeper.wait()
