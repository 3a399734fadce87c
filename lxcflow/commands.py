"""What each ``lxcflow`` subcommand does: call the daemon, render its reply.

Each is a few lines: the parsed arguments in, one or two requests, the reply
printed as LXC's tools print theirs. Stdlib only, and only what a command
needs, imported where it is needed (see :mod:`lxcflow.cli`).
"""

from __future__ import annotations

import sys

from lxcflow.client import Client
from lxcflow.errors import LxcflowError, UsageError
from lxcflow.paths import absolute
from lxcflow.validate import (
    duration,
    environment_variable,
    is_glob,
    remote_name,
    signal_number,
    user_id,
)

# The CLI imports this module on every call: typing costs milliseconds there.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from lxcflow.cmdline import Parsed

def _human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} bytes" if unit == "bytes" else f"{n:.2f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _print_json(value: Any) -> None:
    import json  # it imports re: only --json pays for it

    print(json.dumps(value, indent=2, sort_keys=True))


# ------------------------------------------------------------------ commands


def _print_table(rows: list[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell, as lxc-ls -f prints them."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(" ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def cmd_create(a: Parsed, c: Client) -> int:
    c.call("create", {"name": a.name, "config": absolute(a.config) if a.config else None,
                      "template": a.template, "template_args": a.template_args,
                      "unprivileged": a.unprivileged})
    return 0


def _on_each(a: Parsed, c: Client, op: str, args: dict[str, Any]) -> int:
    """``op`` on the containers -n names: one request whether it names one or
    many (several -n, globs), and one line on stderr for each that failed."""
    names: list[str] = a.name
    if len(names) == 1 and not is_glob(names[0]):
        c.call(op, {"name": names[0], **args})
        return 0
    failed = c.call(op, {"names": names, **args})["failed"]
    for name, error in failed:
        print(f"lxcflow {a.cmd}: {name}: {error}", file=sys.stderr)
    return 1 if failed else 0


def cmd_destroy(a: Parsed, c: Client) -> int:
    return _on_each(a, c, "destroy", {"force": a.force})


def cmd_start(a: Parsed, c: Client) -> int:
    if (a.config or a.command) and (len(a.name) > 1 or is_glob(a.name[0])):
        raise UsageError("-f or a command starts one container: give one -n NAME")
    config = absolute(a.config) if a.config else None
    return _on_each(a, c, "start", {"config": config, "command": a.command})


def cmd_execute(a: Parsed, c: Client) -> int:
    import _signal  # signal's C module: signal itself costs an enum import
    import os

    if not a.command:
        raise UsageError("execute needs a command: lxcflow execute -n NAME -- CMD ...")
    args = {
        "name": a.name,
        "config": absolute(a.config) if a.config else None,
        "command": a.command,
        "cwd": os.getcwd(),
        "env": {k: os.environ[k] for k in ("TERM", "LANG") if k in os.environ},
    }

    def forward(signum: int, _frame: Any) -> None:
        # The container is in its own session: pass the user's ^C on to it.
        try:
            with Client(c.paths, spawn=False) as side:
                # To the init only: it forwards to the command, which must
                # see one ^C, not one from us and one from its init.
                side.call("kill", {"name": a.name, "signal": signum, "init_only": True})
        except LxcflowError:
            pass  # it already ended

    for sig in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT):
        _signal.signal(sig, forward)
    return _exit_status(list(c.stream("execute", args, fds=(0, 1, 2)))[-1])


def _exit_status(result: dict[str, Any]) -> int:
    """The CLI's exit code for a command's end, as a shell reports it."""
    if result.get("signal") is not None:
        return 128 + int(result["signal"])
    code = result.get("exit_code")
    return int(code) if code is not None else 1


def cmd_attach(a: Parsed, c: Client) -> int:
    import os

    if a.clear_env and a.keep_env:
        raise UsageError("give --clear-env or --keep-env, not both")
    if a.cwd is not None and not a.cwd.startswith("/"):
        raise UsageError(f"--cwd {a.cwd!r} is not an absolute path inside the container")
    args = {
        "name": a.name,
        "command": a.command,
        "uid": user_id(a.uid, "uid") if a.uid is not None else 0,
        "gid": user_id(a.gid, "gid") if a.gid is not None else 0,
        # Without --cwd, the caller's directory if the container has it, else /.
        "cwd": a.cwd or os.getcwd(),
        "cwd_strict": a.cwd is not None,
        # LXC's default is to keep the caller's environment.
        "env": {} if a.clear_env else dict(os.environ),
        "set": dict(environment_variable(v) for v in a.set_var or ()),
    }
    if os.isatty(0):
        from lxcflow.terminal import run_on_pty

        result = run_on_pty(c, lambda slave: c.stream("attach", {**args, "tty": True},
                                                      fds=(slave, slave, slave)))
        return _exit_status(result)
    import _signal

    stream = c.stream("attach", args, fds=(0, 1, 2))
    started = next(stream)
    try:
        pidfd = os.pidfd_open(started["pid"])
    except ProcessLookupError:
        pidfd = -1  # it has ended already

    def forward(signum: int, _frame: Any) -> None:
        # The command runs in a session of its own: pass the user's ^C on.
        try:
            _signal.pidfd_send_signal(pidfd, signum)
        except OSError:
            pass  # it ended

    if pidfd >= 0:
        for sig in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT):
            _signal.signal(sig, forward)
    return _exit_status(next(stream))


def cmd_console(a: Parsed, c: Client) -> int:
    from lxcflow import console

    escape = console.escape_code(a.escape)
    if a.tty < 0:
        raise UsageError(f"-t {a.tty}: ttys are numbered from 1 (0 is the console)")
    where = c.call("console", {"name": a.name, "tty": a.tty})
    console.session(where["socket"], a.name, a.tty, escape)
    return 0


def cmd_logs(a: Parsed, c: Client) -> int:
    from lxcflow import console

    if a.lines is not None and a.lines < 0:
        raise UsageError(f"--lines {a.lines}: give a number of lines, 0 or more")
    where = c.call("logs", {"name": a.name})
    try:
        console.show_log(where["log"], where["socket"], follow=a.follow, lines=a.lines)
    except BrokenPipeError:  # `logs | head`: the reader has what it wanted
        return 0
    return 0


def cmd_autostart(a: Parsed, c: Client) -> int:
    chosen = [action for action, given in (("list", a.list), ("kill", a.kill),
                                           ("stop", a.shutdown), ("reboot", a.reboot)) if given]
    if len(chosen) > 1:
        raise UsageError("give at most one of -L, -k, -s, -r")
    action = chosen[0] if chosen else "start"
    report = c.call("autostart", {"action": action, "groups": a.group or [], "all": a.all,
                                  "timeout": a.timeout})
    for name, error in sorted(report["unreadable"].items()):
        print(f"lxcflow autostart: {name}: {error}", file=sys.stderr)
    if action == "list":
        _print_table([("NAME", "ORDER", "DELAY", "GROUPS")] + [
            (e["name"], str(e["order"]), str(e["delay"]), ",".join(e["groups"]) or "-")
            for e in report["containers"]])
        return 0
    failed = [e for e in report["containers"] if str(e["result"]).startswith("failed")]
    for e in failed:
        print(f"lxcflow autostart: {e['name']}: {e['result']}", file=sys.stderr)
    return 1 if failed else 0


def cmd_stop(a: Parsed, c: Client) -> int:
    return _on_each(a, c, "stop", {"timeout": a.timeout, "kill": a.kill, "reboot": a.reboot})


def cmd_kill(a: Parsed, c: Client) -> int:
    return _on_each(a, c, "kill", {"signal": signal_number(a.signal)})


def cmd_freeze(a: Parsed, c: Client) -> int:
    return _on_each(a, c, "freeze", {})


def cmd_unfreeze(a: Parsed, c: Client) -> int:
    return _on_each(a, c, "unfreeze", {})


def cmd_info(a: Parsed, c: Client) -> int:
    info = c.call("info", {"name": a.name})
    if a.json:
        _print_json(info)
        return 0
    rows = [("Name", info["name"]), ("State", info["state"])]
    if info["pid"] is not None:
        rows.append(("PID", str(info["pid"])))
    rows += [("IP", ip) for ip in info["ipv4"]]
    for interface in info.get("interfaces", ()):
        rows.append(("Link", interface["host"]))
        counters = interface["host_counters"]
        if counters is not None:
            # As lxc-info: the host end's view (its TX is what the container got).
            rows += [(" TX bytes", _human_bytes(counters["tx_bytes"])),
                     (" RX bytes", _human_bytes(counters["rx_bytes"])),
                     (" Total bytes", _human_bytes(counters["tx_bytes"] + counters["rx_bytes"]))]
    if info["cpu_ns"] is not None:
        rows.append(("CPU use", f"{info['cpu_ns'] / 1e9:.2f} seconds"))
    if info["memory_bytes"] is not None:
        rows.append(("Memory use", _human_bytes(info["memory_bytes"])))
    check = info.get("health_check")
    if check:
        rows.append(("Health", f"{check['status']} ({check['probe']}, rule {check['rule']})"))
        if check["last_probe_ns"] is not None:
            import time

            ago = max(0.0, (time.time_ns() - check["last_probe_ns"]) / 1e9)
            said = check["last_output"].splitlines()[0] if check["last_output"] else "no output"
            rows.append((" Last probe", f"{'passed' if check['last_ok'] else 'failed'} "
                                        f"{ago:.1f} s ago: {said}"))
    if info.get("userns"):
        ids = info["userns"]
        rows.append(("User namespace", f"container root is host uid {ids['host_uid']}, "
                                       f"gid {ids['host_gid']}"))
    if info.get("apparmor"):
        rows.append(("AppArmor", info["apparmor"]))
    fleet = info.get("fleet")
    if fleet:
        rows.append(("Fleet", _fleet_line(fleet)))
    if info["frozen_by"] is not None:
        rows.append(("Frozen by", info["frozen_by"]))
    if info["frozen_total_ns"]:
        rows.append(("Frozen for", f"{info['frozen_total_ns'] / 1e9:.2f} seconds in all"))
    last = info.get("last_exit")
    if info["state"] == "STOPPED" and last:
        how = f"signal {last['signal']}" if last["signal"] is not None else f"code {last['code']}"
        rows.append(("Last exit", how))
    for key, value in rows:
        print(f"{key + ':':<16}{value}")
    return 0


def _fleet_line(fleet: dict[str, Any]) -> str:
    """The daemon's link to NATS, as ``info`` shows it."""
    import time

    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(fleet["since_ns"] / 1e9))
    if fleet["connected"]:
        line = f"host {fleet['host']}, connected to {fleet['server']} since {since}"
        return line + (f", {fleet['unpublished']} events to publish" if fleet["unpublished"]
                       else "")
    return (f"host {fleet['host']}: SINGLE HOST, NATS ({fleet['nats']}) unreachable since "
            f"{since}: {fleet['error']}; {fleet['unpublished']} events wait to be published")


def cmd_ls(a: Parsed, c: Client) -> int:
    if a.fleet:
        return _ls_fleet(a, c)
    containers = c.call("list")
    if a.json:
        _print_json(containers)
    elif a.fancy:
        _print_table([("NAME", "STATE", "HEALTH", "PID", "IPV4", "EPHEMERAL")] + [
            (ct["name"], ct["state"], ct.get("health") or "-", str(ct["pid"] or "-"),
             ", ".join(ct["ipv4"]) or "-", "YES" if ct["ephemeral"] else "NO")
            for ct in containers
        ])
    else:
        for ct in containers:
            print(ct["name"])
    return 0


def _ls_fleet(a: Parsed, c: Client) -> int:
    fleet = c.call("list", {"fleet": True})
    if a.json:
        _print_json(fleet)
        return 0
    if not fleet["connected"]:
        print("lxcflow ls: not connected to NATS: other hosts as last seen", file=sys.stderr)
    hosts = fleet["hosts"]
    rows: list[tuple[str, ...]] = [("HOST", "NAME", "STATE", "HEALTH", "PID")]
    for ct in fleet["containers"]:
        host = ct["host"] + (" (lost)" if hosts.get(ct["host"], {}).get("lost") else "")
        rows.append((host, ct["name"], ct["state"], ct.get("health") or "-",
                     str(ct.get("pid") or "-")))
    with_containers = {ct["host"] for ct in fleet["containers"]}
    for host, seen in sorted(hosts.items()):
        if host not in with_containers:
            rows.append((host + (" (lost)" if seen["lost"] else ""), "-", "-", "-", "-"))
    _print_table(rows)
    return 0


def cmd_top(a: Parsed, c: Client) -> int:
    from lxcflow import top  # curses: only this command draws

    return top.run(c, a.interval)


def cmd_ps(a: Parsed, c: Client) -> int:
    procs = c.call("ps", {"name": a.name})
    if a.json:
        _print_json(procs)
        return 0
    print(f"{'CONTAINER':<16} {'PID':>8} {'NSPID':>6} CMD")
    for p in procs:
        print(f"{a.name:<16} {p['pid']:>8} {p['ns_pid']:>6} {p['command']}")
    return 0


def cmd_priority(a: Parsed, c: Client) -> int:
    print(c.call("priority", {"name": a.name, "value": a.priority}))
    return 0


def cmd_cgroup(a: Parsed, c: Client) -> int:
    value = c.call("cgroup", {"name": a.name, "key": a.key, "value": a.value})
    if a.value is None:
        print(value)
    return 0


def parse_since(text: str, now_ns: int) -> dict[str, int]:
    """``--since``: an event id (``1234``), a time ago (``90s``, ``5m``, ``2h``,
    ``1d``), seconds since the epoch (``@1700000000``) or an ISO 8601 time."""
    from datetime import datetime  # only monitor --since pays for it

    if text.isdigit():
        return {"since_id": int(text)}
    try:
        return {"since_ns": now_ns - int(duration(text) * 1e9)}
    except UsageError:
        pass  # not a time ago
    try:
        if text.startswith("@"):
            return {"since_ns": int(float(text[1:]) * 1e9)}
        return {"since_ns": int(datetime.fromisoformat(text).timestamp() * 1e9)}
    except (ValueError, OverflowError):
        raise UsageError(
            f"bad --since {text!r}: give an event id, 90s/5m/2h/1d, @EPOCH or an ISO 8601 time"
        ) from None


def _describe(event: dict[str, Any]) -> str:
    """As lxc-monitor prints it; another host's container as ``'HOST:NAME'``."""
    name = f"{event['host']}:{event['container']}" if "host" in event else event["container"]
    if event.get("kind") == "notice":
        detail = f": {event['detail']}" if event.get("detail") else ""
        return f"{name!r} {event.get('notice')}{detail} [{event['cause']}]"
    line = f"{name!r} changed state to [{event['to']}]"
    if event["to"] == "STOPPED" and event["exit_code"] is not None:
        line += f"\n{name!r} exited with status [{event['exit_code']}]"
    elif event["to"] == "STOPPED" and event["signal"] is not None:
        line += f"\n{name!r} was killed by signal [{event['signal']}]"
    return line


def cmd_monitor(a: Parsed, c: Client) -> int:
    import json
    import time

    args: dict[str, Any] = {"follow": a.follow, "fleet": a.fleet}
    if a.name:
        # Any of them; grouped so one pattern's anchors cannot bind to another's.
        args["regex"] = a.name[0] if len(a.name) == 1 else "|".join(f"(?:{n})" for n in a.name)
    if a.since:
        args.update(parse_since(a.since, time.time_ns()))
    try:
        for item in c.stream("monitor", args):
            if "missed" in item:
                count = item["missed"] if item["missed"] is not None else "some"
                print(f"lxcflow monitor: {count} events missed", file=sys.stderr)
            elif "container" in item:
                print(json.dumps(item, sort_keys=True) if a.json else _describe(item), flush=True)
    except KeyboardInterrupt:
        pass  # ^C is how a monitor is meant to end
    return 0


def cmd_wait(a: Parsed, c: Client) -> int:
    if (a.states is None) == (not a.healthy):
        raise UsageError("give -s/--states or --healthy (one of them)")
    states = [s.strip().upper() for s in a.states.split("|")] if a.states else []
    for name in a.name:
        remote_name(name)  # a bad HOST part is a usage error here, before any request
    result = c.call("wait", {"names": a.name, "states": states, "timeout": a.timeout,
                             "thaw": a.thaw, "healthy": a.healthy})
    if a.json:
        _print_json(result)
    return 0


def cmd_rules_list(a: Parsed, c: Client) -> int:
    report = c.call("rules")
    if a.json:
        _print_json(report)
        return 0
    if not report["rules"]:
        print(f"no rules loaded (directory: {report['directory'] or 'none'})")
    for rule in report["rules"]:
        print(f"{rule['name']}  [{rule['trigger']}]  containers {rule['containers']}  "
              f"({rule['file']}:{rule['line']})")
        if rule["actions"]:
            print(f"    actions: {', '.join(rule['actions'])}")
        for container, state in rule["state"].items():
            print(f"    {container}: {state}")
    for error in report["errors"]:
        print(f"error (last good version kept): {error['error']}")
    return 0


def rules_check(directory: str) -> int:
    """``rules check``: validate a rules directory without a daemon."""
    from pathlib import Path

    from lxcflow.rules.parse import check_directory

    rules, errors = check_directory(Path(directory))
    for error in errors:
        print(f"lxcflow rules: {error}", file=sys.stderr)
    if errors:
        return 2
    for rule in rules:
        print(f"{rule.where}: {rule.name}: ok")
    print(f"{len(rules)} rules ok in {directory}")
    return 0


def cmd_net(a: Parsed, c: Client) -> int:
    if a.action == "bridge-add":
        c.call("bridge_add", {"name": a.bridge, "ipv4": a.ipv4, "uplink": a.uplink})
    elif a.action == "bridge-del":
        c.call("bridge_del", {"name": a.bridge})
    elif a.json:
        _print_json(c.call("bridges"))
    else:
        _print_table([("BRIDGE", "STATE", "IPV4", "PORTS")] + [
            (b["name"], b["state"], ", ".join(b["ipv4"]) or "-", ", ".join(b["ports"]) or "-")
            for b in c.call("bridges")
        ])
    return 0
