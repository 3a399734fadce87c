"""The ``lxcflow`` command: a thin, synchronous client of the daemon.

Each subcommand is a few lines: parse, call, render. It imports neither trio
nor pyroute2 (only ``lxcflow daemon`` does), so a call costs little more
than starting Python. Errors map to exit codes in one place, :func:`main`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from lxcflow.client import Client
from lxcflow.errors import LxcflowError, UsageError
from lxcflow.paths import Paths

# The CLI imports this module on every call: typing costs milliseconds there.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, NoReturn

    Handler = Callable[[argparse.Namespace, Client], int]

DEFAULT_RULES = "/etc/lxcflow/rules"


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_signal(text: str) -> int:
    """``KILL``, ``SIGKILL``, ``kill`` or ``9`` -> 9."""
    if text.isdigit():
        number = int(text)
        if 1 <= number < signal.NSIG:
            return number
        raise UsageError(f"invalid signal {text!r}")
    name = text.upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise UsageError(f"invalid signal {text!r}") from None


def _human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} bytes" if unit == "bytes" else f"{n:.2f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


# ------------------------------------------------------------------ commands


def _print_table(rows: list[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell, as lxc-ls -f prints them."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(" ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def cmd_create(a: argparse.Namespace, c: Client) -> int:
    c.call("create", {"name": a.name, "config": os.path.abspath(a.config)})
    return 0


def cmd_destroy(a: argparse.Namespace, c: Client) -> int:
    c.call("destroy", {"name": a.name, "force": a.force})
    return 0


def cmd_start(a: argparse.Namespace, c: Client) -> int:
    config = os.path.abspath(a.config) if a.config else None
    c.call("start", {"name": a.name, "config": config, "command": a.command})
    return 0


def cmd_execute(a: argparse.Namespace, c: Client) -> int:
    if not a.command:
        raise UsageError("execute needs a command: lxcflow execute -n NAME -- CMD ...")
    args = {
        "name": a.name,
        "config": os.path.abspath(a.config) if a.config else None,
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

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, forward)
    result = list(c.stream("execute", args, fds=(0, 1, 2)))[-1]
    if result.get("signal") is not None:
        return 128 + int(result["signal"])
    code = result.get("exit_code")
    return int(code) if code is not None else 1


def cmd_stop(a: argparse.Namespace, c: Client) -> int:
    c.call("stop", {"name": a.name, "timeout": a.timeout, "kill": a.kill})
    return 0


def cmd_kill(a: argparse.Namespace, c: Client) -> int:
    c.call("kill", {"name": a.name, "signal": parse_signal(a.signal)})
    return 0


def cmd_freeze(a: argparse.Namespace, c: Client) -> int:
    c.call("freeze", {"name": a.name})
    return 0


def cmd_unfreeze(a: argparse.Namespace, c: Client) -> int:
    c.call("unfreeze", {"name": a.name})
    return 0


def cmd_info(a: argparse.Namespace, c: Client) -> int:
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


def cmd_ls(a: argparse.Namespace, c: Client) -> int:
    containers = c.call("list")
    if a.json:
        _print_json(containers)
    elif a.fancy:
        _print_table([("NAME", "STATE", "PID", "IPV4", "EPHEMERAL")] + [
            (ct["name"], ct["state"], str(ct["pid"] or "-"), ", ".join(ct["ipv4"]) or "-",
             "YES" if ct["ephemeral"] else "NO")
            for ct in containers
        ])
    else:
        for ct in containers:
            print(ct["name"])
    return 0


def cmd_ps(a: argparse.Namespace, c: Client) -> int:
    procs = c.call("ps", {"name": a.name})
    if a.json:
        _print_json(procs)
        return 0
    print(f"{'CONTAINER':<16} {'PID':>8} {'NSPID':>6} CMD")
    for p in procs:
        print(f"{a.name:<16} {p['pid']:>8} {p['ns_pid']:>6} {p['command']}")
    return 0


def cmd_priority(a: argparse.Namespace, c: Client) -> int:
    print(c.call("priority", {"name": a.name, "value": a.priority}))
    return 0


def cmd_cgroup(a: argparse.Namespace, c: Client) -> int:
    value = c.call("cgroup", {"name": a.name, "key": a.key, "value": a.value})
    if a.value is None:
        print(value)
    return 0


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now_ns: int) -> dict[str, int]:
    """``--since``: an event id (``1234``), a time ago (``90s``, ``5m``, ``2h``,
    ``1d``), seconds since the epoch (``@1700000000``) or an ISO 8601 time."""
    from datetime import datetime  # only monitor --since pays for it

    if text.isdigit():
        return {"since_id": int(text)}
    try:
        if text[-1:] in _UNITS and text[:-1].replace(".", "", 1).isdigit():
            return {"since_ns": now_ns - int(float(text[:-1]) * _UNITS[text[-1]] * 1e9)}
        if text.startswith("@"):
            return {"since_ns": int(float(text[1:]) * 1e9)}
        return {"since_ns": int(datetime.fromisoformat(text).timestamp() * 1e9)}
    except (ValueError, OverflowError):
        raise UsageError(
            f"bad --since {text!r}: give an event id, 90s/5m/2h/1d, @EPOCH or an ISO 8601 time"
        ) from None


def _describe(event: dict[str, Any]) -> str:
    if event.get("kind") == "notice":
        return f"{event['container']!r} {event['detail']} [{event['cause']}]"
    line = f"{event['container']!r} changed state to [{event['to']}]"
    if event["to"] == "STOPPED" and event["exit_code"] is not None:
        line += f"\n{event['container']!r} exited with status [{event['exit_code']}]"
    elif event["to"] == "STOPPED" and event["signal"] is not None:
        line += f"\n{event['container']!r} was killed by signal [{event['signal']}]"
    return line


def cmd_monitor(a: argparse.Namespace, c: Client) -> int:
    args: dict[str, Any] = {"follow": a.follow}
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


def cmd_wait(a: argparse.Namespace, c: Client) -> int:
    states = [s.strip().upper() for s in a.states.split("|")]
    result = c.call("wait", {"names": a.name, "states": states, "timeout": a.timeout,
                                 "thaw": a.thaw})
    if a.json:
        _print_json(result)
    return 0


# ------------------------------------------------------------------ parser


def cmd_rules_list(a: argparse.Namespace, c: Client) -> int:
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


def cmd_net(a: argparse.Namespace, c: Client) -> int:
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


def _command_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command (after --)")


def build_parser() -> Parser:
    common = Parser(add_help=False)
    common.add_argument("-P", "--lxcpath", default=argparse.SUPPRESS,
                        help="container directory (LXCFLOW_PATH, default /var/lib/lxcflow)")
    common.add_argument("--socket", default=argparse.SUPPRESS,
                        help="daemon socket (LXCFLOW_SOCKET, default /run/lxcflow/lxcflow.sock)")
    common.add_argument("--no-spawn", action="store_true", default=argparse.SUPPRESS,
                        help="fail instead of starting a daemon when none answers")
    common.add_argument("--cgroup-parent", default=argparse.SUPPRESS,
                        help="cgroup directory holding the containers (default lxcflow)")
    named = Parser(add_help=False)
    named.add_argument("-n", "--name", required=True, help="container name")

    p = Parser(prog="lxcflow", parents=[common],
               description="Linux containers with an event-driven supervisor.")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND", parser_class=Parser)

    def add(name: str, handler: Handler | None, help: str, *, needs_name: bool = True) -> Parser:
        parents = [common, named] if needs_name else [common]
        sp = sub.add_parser(name, parents=parents, help=help, description=help)
        sp.set_defaults(handler=handler)
        return sp

    sp = add("create", cmd_create, "associate a name with a config file")
    sp.add_argument("-f", "--config", required=True, help="LXC config file")
    sp = add("destroy", cmd_destroy, "remove a container's config and metadata")
    sp.add_argument("-f", "--force", action="store_true", help="stop it first if running")
    sp = add("start", cmd_start, "start a system container; returns once RUNNING")
    sp.add_argument("-f", "--config", help="config file (runs an uncreated name ephemerally)")
    _command_args(sp)
    sp = add("execute", cmd_execute, "run a command in an application container, in the foreground")
    sp.add_argument("-f", "--config", help="config file (runs an uncreated name ephemerally)")
    _command_args(sp)
    sp = add("stop", cmd_stop, "stop a container: halt signal, then SIGKILL after -t")
    sp.add_argument("-t", "--timeout", type=float, default=60.0,
                    help="seconds to wait before killing (default 60)")
    sp.add_argument("-k", "--kill", action="store_true", help="kill at once")
    sp = add("kill", cmd_kill, "send a signal to every process of a container")
    sp.add_argument("-s", "--signal", default="SIGKILL", help="name or number (default SIGKILL)")
    add("freeze", cmd_freeze, "freeze a container; returns once FROZEN")
    add("unfreeze", cmd_unfreeze, "thaw a frozen container; returns once RUNNING")
    sp = add("info", cmd_info, "show a container's state, PID and resource use")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp = add("ps", cmd_ps, "list a container's processes")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp = add("ls", cmd_ls, "list containers", needs_name=False)
    sp.add_argument("-f", "--fancy", action="store_true", help="a table with state and PID")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp = add("priority", cmd_priority, "read or set CPU priority (cpu.shares semantics)")
    sp.add_argument("-p", "--priority", type=int, help="new value (2..262144)")
    sp = add("cgroup", cmd_cgroup, "read or write a cgroup attribute")
    sp.add_argument("key", help="attribute, e.g. cpu.shares or memory.max")
    sp.add_argument("value", nargs="?", help="new value")
    sp = add("monitor", cmd_monitor, "print state changes as they happen", needs_name=False)
    sp.add_argument("-n", "--name", action="append",
                    help="regex over container names (repeatable; default all)")
    sp.add_argument("--json", action="store_true", help="one JSON object per event")
    sp.add_argument("--since", help="replay from an event id or a time first")
    sp.add_argument("--follow", action=argparse.BooleanOptionalAction, default=True,
                    help="keep printing new events (default) or stop after the replay")
    sp = add("wait", cmd_wait, "wait until containers are in one of some states",
             needs_name=False)
    sp.add_argument("-n", "--name", action="append", required=True,
                    help="container name (repeatable: all must match)")
    sp.add_argument("-s", "--states", required=True, help="states, as 'RUNNING|FROZEN'")
    sp.add_argument("-t", "--timeout", type=float, help="seconds (default: forever)")
    sp.add_argument("--json", action="store_true", help="print the states reached")
    sp.add_argument("--thaw", action="store_true",
                    help="unfreeze any of them that is FROZEN (e.g. by an idle rule) first")
    sp = add("rules", cmd_rules_list, "check a rules directory, or list the loaded rules",
             needs_name=False)
    sp.add_argument("action", choices=("check", "list"),
                    help="check: validate DIRECTORY (no daemon needed); list: the daemon's rules")
    sp.add_argument("directory", nargs="?", default=DEFAULT_RULES,
                    help=f"for check (default {DEFAULT_RULES})")
    sp.add_argument("--json", action="store_true", help="list as JSON")
    sp = add("net", cmd_net, "bridges for containers: add, delete, list", needs_name=False)
    net = sp.add_subparsers(dest="action", required=True, metavar="ACTION",
                            parser_class=Parser)
    bp = net.add_parser("bridge-add", help="create a bridge (forward delay 0, up, no uplink)")
    bp.add_argument("bridge", help="bridge name (at most 15 characters)")
    bp.add_argument("--ipv4", help="the bridge's own address, as ADDRESS/PREFIXLEN")
    bp.add_argument("--uplink", help="enslave this interface (never done unless asked)")
    bp = net.add_parser("bridge-del", help="remove a bridge that has no ports left")
    bp.add_argument("bridge", help="bridge name")
    bp = net.add_parser("ls", help="list the host's bridges")
    bp.add_argument("--json", action="store_true", help="as JSON")
    add("checkconfig", None, "what this kernel supports", needs_name=False)
    sp = add("daemon", None, "run the supervisor in the foreground", needs_name=False)
    sp.add_argument("--log-format", choices=("console", "json"), default="console")
    sp.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    sp.add_argument("--journal-max-events", type=int, default=100_000,
                    help="events the journal keeps at most (default 100000)")
    sp.add_argument("--journal-max-age", type=float, default=7 * 86400,
                    help="seconds the journal keeps an event (default 7 days)")
    sp.add_argument("--hooks", default="/etc/lxcflow/hooks",
                    help="executables run on every transition (default /etc/lxcflow/hooks)")
    sp.add_argument("--hook-timeout", type=float, default=30.0,
                    help="seconds a hook may run before it is killed (default 30)")
    sp.add_argument("--rules", help=f"rules directory, watched for edits (default {DEFAULT_RULES}"
                                    ", if it exists)")
    sp.add_argument("--restart-budget", type=float, default=120.0,
                    help="restarts a minute across all containers, at most (default 120)")
    sp.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code (0 ok, 1 failed, 2 usage)."""
    args = build_parser().parse_args(argv)
    if getattr(args, "command", None) and args.command[0] == "--":
        args.command = args.command[1:]
    paths = Paths.from_env(
        getattr(args, "lxcpath", None), getattr(args, "socket", None),
        getattr(args, "cgroup_parent", None),
    )
    try:
        if args.cmd == "daemon":
            if args.journal_max_events < 1 or not args.journal_max_age > 0:
                raise UsageError("journal limits must be positive")
            if not args.hook_timeout > 0:
                raise UsageError("--hook-timeout must be positive")
            if not args.restart_budget > 0:
                raise UsageError("--restart-budget must be positive")
            rules_dir = Path(args.rules or DEFAULT_RULES).absolute()
            if args.rules is not None and not rules_dir.is_dir():
                raise UsageError(f"--rules {args.rules}: no such directory")
            from lxcflow import daemon  # the only command that needs trio

            return daemon.run(
                paths, ready_fd=args.ready_fd, log_format=args.log_format,
                log_level=args.log_level, journal_max_events=args.journal_max_events,
                journal_max_age_s=args.journal_max_age,
                hooks_dir=Path(args.hooks).absolute(), hook_timeout=args.hook_timeout,
                rules_dir=rules_dir, restart_budget=args.restart_budget,
            )
        if args.cmd == "rules" and args.action == "check":
            return rules_check(args.directory)
        if args.cmd == "checkconfig":
            from lxcflow import checkconfig

            return checkconfig.run()
        with Client(paths, spawn=not getattr(args, "no_spawn", False)) as client:
            return int(args.handler(args, client))
    except LxcflowError as e:
        print(f"lxcflow {args.cmd}: {e.message}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
