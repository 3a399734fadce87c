"""Hook runs: real processes, output, exit codes, timeouts, environment."""

from __future__ import annotations

import json
import os
from pathlib import Path

import trio

from lxcflow.daemon import hooks
from lxcflow.states import Cause, Event, State


async def test_output_and_exit_code_are_kept() -> None:
    r = await hooks.run(["sh", "-c", "echo out; echo err >&2; exit 3"], env={}, kill_after=10)
    assert r.code == 3
    assert not r.ok
    assert sorted(r.output.split()) == ["err", "out"]


async def test_stdin_reaches_the_hook() -> None:
    r = await hooks.run(["cat"], env={}, stdin=b"hello\n", kill_after=10)
    assert r.ok
    assert r.output == "hello\n"


async def test_a_hanging_hook_and_its_children_are_killed_at_the_timeout(tmp_path: Path) -> None:
    pidfile = tmp_path / "child"
    t0 = trio.current_time()
    r = await hooks.run(
        ["sh", "-c", f"sleep 1000 & echo $! > {pidfile}; echo started; wait"], env={},
        kill_after=0.5,
    )
    assert r.timed_out
    assert r.code is None
    assert r.output == "started\n"
    assert trio.current_time() - t0 < 5
    child = int(pidfile.read_text())
    try:
        pidfd = os.pidfd_open(child)
    except ProcessLookupError:
        return  # already gone
    try:
        with trio.fail_after(5):  # killed with its session, not left running
            await trio.lowlevel.wait_readable(pidfd)
    finally:
        os.close(pidfd)


async def test_a_cancelled_caller_leaves_no_hook_running(tmp_path: Path) -> None:
    pidfile = tmp_path / "hook"
    with trio.move_on_after(0.5):  # the daemon stopping while a hook runs
        await hooks.run(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 1000"], env={},
                        kill_after=100)
    try:
        pidfd = os.pidfd_open(int(pidfile.read_text()))
    except ProcessLookupError:
        return  # killed and reaped
    try:
        with trio.fail_after(5):
            await trio.lowlevel.wait_readable(pidfd)
    finally:
        os.close(pidfd)


async def test_a_missing_program_is_a_result_not_an_exception() -> None:
    r = await hooks.run(["/nonexistent/hook"], env={}, kill_after=1)
    assert not r.ok
    assert "cannot run /nonexistent/hook" in r.output


async def test_output_is_bounded() -> None:
    r = await hooks.run(["sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x"], env={},
                        kill_after=10)
    assert r.ok
    assert len(r.output) == hooks.MAX_OUTPUT


async def test_lxc_hook_gets_name_section_and_type_as_arguments() -> None:
    env = hooks.lxc_env("web", "pre-start", "/var/lib/lxcflow/web/config", None)
    # A name with shell syntax in it must arrive as data, never as code.
    r = await hooks.run(hooks.lxc_argv('printf "%s|" "$LXC_HOOK_TYPE"', "a;b", "pre-start"),
                        env=env, kill_after=10)
    assert r.output == "pre-start|a;b|lxc|pre-start|"


async def test_global_hooks_get_the_event(tmp_path: Path) -> None:
    out = tmp_path / "seen"
    hook = tmp_path / "10-record"
    hook.write_text(f'#!/bin/sh\n{{ cat; echo "$LXC_NAME $LXCFLOW_FROM $LXCFLOW_TO '
                    f'$LXCFLOW_EXIT_CODE"; }} > {out}\n')
    hook.chmod(0o755)
    (tmp_path / "20-not-executable").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "10-record~").write_text("editor leftover")
    os.chmod(tmp_path / "10-record~", 0o755)
    assert hooks.global_hooks(tmp_path) == [hook]
    event = Event("web", State.STOPPING, State.STOPPED, Cause.KERNEL, id=7, exit_code=2)
    await hooks.run_global(tmp_path, event, kill_after=10)
    stdin_line, env_line = out.read_text().splitlines()
    assert json.loads(stdin_line)["id"] == 7
    assert env_line == "web STOPPING STOPPED 2"


async def test_a_global_hook_hears_what_a_notice_is(tmp_path: Path) -> None:
    out = tmp_path / "seen"
    hook = tmp_path / "record"
    hook.write_text(f'#!/bin/sh\n{{ cat; echo "$LXCFLOW_NOTICE|$LXCFLOW_CAUSE"; }} > {out}\n')
    hook.chmod(0o755)
    event = Event("web", State.RUNNING, State.RUNNING, Cause.RULE, rule="web-alive", id=8,
                  notice="unhealthy", detail="exit 1: refused")
    await hooks.run_global(tmp_path, event, kill_after=10)
    stdin_line, env_line = out.read_text().splitlines()
    assert (json.loads(stdin_line)["notice"], json.loads(stdin_line)["detail"]) == (
        "unhealthy", "exit 1: refused")
    assert env_line == "unhealthy|rule:web-alive"
    transition = Event("web", State.STOPPING, State.STOPPED, Cause.KERNEL, id=9)
    assert "LXCFLOW_NOTICE" not in hooks.global_env(transition)


def test_missing_hooks_directory_means_no_hooks(tmp_path: Path) -> None:
    assert hooks.global_hooks(tmp_path / "nope") == []
