"""Running hook executables: LXC's per-container hooks and global event hooks.

Per-container hooks come from the config (``lxc.hook.pre-start`` and the
others) and run at the same points as in LXC, with LXC's environment; their
value is a command line written by the administrator, run by ``/bin/sh`` as
LXC does, with the container's name, ``lxc`` and the hook type appended as
arguments (never interpolated into the command). Global hooks are the
executables in a hooks directory: each runs on every transition, exec'd
directly, with the event as JSON on stdin.

Every hook has a timeout, after which it is killed; its output goes to the
log, bounded.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
import trio

from lxcflow.config import ContainerConfig
from lxcflow.daemon.events import EventBus
from lxcflow.runtime.lxc_hooks import DEFAULT_PATH, lxc_argv, lxc_env
from lxcflow.states import Event

log = structlog.get_logger("lxcflow.hooks")

#: output kept in the log per hook run
MAX_OUTPUT = 16 * 1024


@dataclass(frozen=True, slots=True)
class HookResult:
    """How one hook run ended."""

    code: int | None  # exit code; None if it was killed by a signal or timed out
    timed_out: bool
    output: str  # stdout and stderr, interleaved, at most MAX_OUTPUT bytes

    @property
    def ok(self) -> bool:
        return self.code == 0


async def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    stdin: bytes = b"",
    kill_after: float,
) -> HookResult:
    """Run one hook until it ends, or kill it (and its session) after
    ``kill_after`` seconds; never raises for the hook's own failures."""
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    in_fd = _stdin_fd(stdin)
    try:
        process = await trio.lowlevel.open_process(
            list(argv), stdin=in_fd, stdout=out_w, stderr=out_w, env=dict(env),
            start_new_session=True,
        )
    except OSError as e:
        os.close(out_r)
        return HookResult(code=None, timed_out=False, output=f"cannot run {argv[0]}: {e.strerror}")
    finally:
        os.close(out_w)
        os.close(in_fd)
    output = bytearray()
    try:
        async with trio.lowlevel.FdStream(out_r) as stream:
            with trio.move_on_after(kill_after) as scope:
                while chunk := await stream.receive_some(65536):
                    if len(output) < MAX_OUTPUT:
                        output += chunk[: MAX_OUTPUT - len(output)]
                await process.wait()
        timed_out = scope.cancelled_caught
    finally:
        # Timed out, or the caller was cancelled (the daemon stopping): kill
        # its whole session, since a hook's children must not outlive it.
        if process.returncode is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            with trio.CancelScope(shield=True):
                await process.wait()
    code = process.returncode
    return HookResult(
        code=code if code is not None and code >= 0 and not timed_out else None,
        timed_out=timed_out,
        output=output.decode(errors="replace"),
    )


def _stdin_fd(data: bytes) -> int:
    """A pipe already holding ``data`` (hook input is small), or /dev/null."""
    if not data:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        os.write(w, data[:60000])  # below the pipe buffer: never blocks
    finally:
        os.close(w)
    return r


def global_env(event: Event) -> dict[str, str]:
    """The environment of a global hook for one event."""
    env = {
        "PATH": DEFAULT_PATH,
        "LXC_NAME": event.container,
        "LXCFLOW_FROM": event.from_state.value,
        "LXCFLOW_TO": event.to_state.value,
        "LXCFLOW_CAUSE": event.cause_text,
        "LXCFLOW_EVENT_ID": str(event.id),
    }
    if event.exit_code is not None:
        env["LXCFLOW_EXIT_CODE"] = str(event.exit_code)
    if event.signal is not None:
        env["LXCFLOW_SIGNAL"] = str(event.signal)
    if event.notice is not None:
        env["LXCFLOW_NOTICE"] = event.notice
    return env


def global_hooks(directory: Path) -> list[Path]:
    """The executables in ``directory`` that run on every event, by name.

    As run-parts: hidden files and editor leftovers (``~``, ``.bak``,
    ``.dpkg-*``) are skipped.
    """
    try:
        entries = sorted(directory.iterdir())
    except FileNotFoundError:
        return []
    return [
        p for p in entries
        if p.is_file() and os.access(p, os.X_OK) and not p.name.startswith(".")
        and not p.name.endswith(("~", ".bak", ".swp")) and ".dpkg-" not in p.name
    ]


async def run_global(directory: Path, event: Event, kill_after: float) -> None:
    """Run every global hook for one event, one after another, logging each."""
    found = global_hooks(directory)
    if not found:
        return
    stdin = json.dumps(event.to_dict()).encode() + b"\n"
    for hook in found:
        result = await run([str(hook)], env=global_env(event), stdin=stdin, kill_after=kill_after)
        report(result, hook=str(hook), container=event.container, event_id=event.id)


def report(result: HookResult, **context: object) -> None:
    """Log how a hook ended, with its output."""
    if result.ok:
        log.info("hook_ran", output=result.output or None, **context)
    elif result.timed_out:
        log.error("hook_timed_out", output=result.output or None, **context)
    else:
        log.error("hook_failed", code=result.code, output=result.output or None, **context)


async def run_lxc(name: str, config: ContainerConfig, hook_type: str, kill_after: float) -> bool:
    """Run the container's ``lxc.hook.<type>`` commands in order; False at the
    first that fails (the rest are not run, as in LXC)."""
    env = lxc_env(name, hook_type, config.file, config.rootfs)
    for command in config.hooks.get(hook_type, ()):
        result = await run(lxc_argv(command, name, hook_type), env=env, kill_after=kill_after)
        report(result, container=name, hook=f"lxc.hook.{hook_type}")
        if not result.ok:
            return False
    return True


async def run_global_hooks(
    bus: EventBus,
    directory: Path,
    kill_after: float,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the global hooks for every event, in order, one event at a time.

    A hook that fails or hangs (it is killed at the timeout) is logged and
    never stops the daemon; events arriving meanwhile queue (1,024 at most,
    then they are counted as missed for hooks).
    """
    with bus.subscribe() as sub:
        task_status.started()
        while True:
            event = await sub.receive_counting("hooks_missed_events")
            try:
                await run_global(directory, event, kill_after)
            except Exception as e:  # e.g. an unreadable hooks directory
                log.exception("hooks_failed", error=str(e), event_id=event.id)
