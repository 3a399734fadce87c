"""The ``lxcflow`` command: a thin, synchronous client of the daemon.

Each subcommand is a few lines: parse, call, render. A call should cost
little more than starting Python, so this imports neither trio nor pyroute2
(only ``lxcflow daemon`` does) and, on the way to a common command, no
stdlib module that is slow to import (argparse, json, re, pathlib, socket,
signal, enum, typing): what one command needs it imports itself. Errors map
to exit codes in one place, :func:`main`.
"""

from __future__ import annotations

import sys

from lxcflow.client import Client
from lxcflow.cmdline import Argument, Command, CommandLineError, HelpRequested, Option, parse
from lxcflow.commands import (
    cmd_attach,
    cmd_autostart,
    cmd_cgroup,
    cmd_console,
    cmd_create,
    cmd_destroy,
    cmd_execute,
    cmd_freeze,
    cmd_info,
    cmd_kill,
    cmd_logs,
    cmd_ls,
    cmd_monitor,
    cmd_net,
    cmd_priority,
    cmd_ps,
    cmd_rules_list,
    cmd_start,
    cmd_stop,
    cmd_top,
    cmd_unfreeze,
    cmd_wait,
    rules_check,
)
from lxcflow.errors import LxcflowError, UsageError
from lxcflow.paths import Paths

# The CLI imports this module on every call: typing costs milliseconds there.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from lxcflow.cmdline import Parsed
    from lxcflow.daemon.options import FleetOptions

    Handler = Callable[[Parsed, Client], int]

DEFAULT_RULES = "/etc/lxcflow/rules"


# ------------------------------------------------------------------ the table

_NAME = Option("-n", "--name", value=str, required=True, help="container name")
_JSON = Option("--json", help="machine-readable output")
_CONFIG = Option("-f", "--config", value=str, metavar="FILE",
                 help="config file (runs an uncreated name ephemerally)")
_COMMAND = Argument("command", "the command (after --)", rest=True)


_NAMES = Option("-n", "--name", value=str, required=True, append=True, metavar="NAME",
                help="container name, or a quoted glob such as 'web-*' (repeatable)")


def _named(name: str, handler: Handler, help: str, *options: Option,
           arguments: Sequence[Argument] = (), many: bool = False) -> Command:
    """A command on one container, named by -n; ``many``: or on several
    (-n repeatable, and globs)."""
    return Command(name, help, handler, options=(_NAMES if many else _NAME, *options),
                   arguments=arguments)


COMMANDS = Command(
    "lxcflow", "Linux containers with an event-driven supervisor.",
    choice="cmd", metavar="COMMAND",
    options=(
        Option("-P", "--lxcpath", value=str, metavar="DIR",
               help="container directory (LXCFLOW_PATH, default /var/lib/lxcflow)"),
        Option("--socket", value=str, metavar="PATH",
               help="daemon socket (LXCFLOW_SOCKET, default /run/lxcflow/lxcflow.sock)"),
        Option("--no-spawn", help="fail instead of starting a daemon when none answers"),
        Option("--cgroup-parent", value=str, metavar="NAME",
               help="cgroup directory holding the containers (default lxcflow)"),
    ),
    subcommands=(
        _named("create", cmd_create,
               "associate a name with a config file, filled in by a template",
               Option("-f", "--config", value=str, metavar="FILE", help="LXC config file"),
               Option("-t", "--template", value=str, metavar="TEMPLATE",
                      help="busybox, or an LXC template's name (lxc-NAME)"),
               Option("--unprivileged",
                      help="container root is host uid and gid 100000 (lxc.idmap)"),
               arguments=(Argument("template_args", "the template's own options (after --)",
                                   rest=True),)),
        _named("destroy", cmd_destroy, "remove a container's config and metadata",
               Option("-f", "--force", help="stop it first if running"), many=True),
        _named("start", cmd_start, "start system containers; returns once RUNNING",
               _CONFIG, arguments=(_COMMAND,), many=True),
        _named("execute", cmd_execute,
               "run a command in an application container, in the foreground",
               _CONFIG, arguments=(_COMMAND,)),
        _named("attach", cmd_attach,
               "run a command (default: a shell) inside a running container",
               Option("-u", "--uid", value=str, metavar="UID", help="run as this user id"),
               Option("-g", "--gid", value=str, metavar="GID", help="run as this group id"),
               Option("--cwd", value=str, metavar="DIR",
                      help="start in DIR (default: the current directory, else /)"),
               Option("--clear-env", help="start from the container's environment only"),
               Option("--keep-env", help="keep the caller's environment (the default)"),
               Option("-v", "--set-var", value=str, append=True, metavar="VAR=VALUE",
                      help="set a variable (repeatable)"),
               arguments=(_COMMAND,)),
        _named("console", cmd_console, "join a running container's tty (Ctrl-a q detaches)",
               Option("-t", "--tty", value=int, default=1, metavar="N",
                      help="tty number (default 1; 0 is the console)"),
               Option("-e", "--escape", value=str, default="a", metavar="LETTER",
                      help="the escape key: a (the default) or ^a for Ctrl-a")),
        _named("logs", cmd_logs, "print what a container wrote to its console",
               Option("-f", "--follow", help="then what it writes, until it stops"),
               Option("--lines", value=int, metavar="N", help="only the last N lines")),
        Command("autostart", "start (or stop) the containers with lxc.start.auto, in order",
                cmd_autostart, options=(
                    Option("-a", "--all", help="every autostart container, whatever its group"),
                    Option("-g", "--group", value=str, append=True, metavar="GROUP",
                           help="those in GROUP (repeatable; default: those in no group)"),
                    Option("-L", "--list", help="list them in start order, do nothing"),
                    Option("-s", "--shutdown", help="stop them politely, in reverse order"),
                    Option("-k", "--kill", help="kill them, in reverse order"),
                    Option("-r", "--reboot", help="reboot them, in reverse order"),
                    Option("-t", "--timeout", value=float, default=60.0, metavar="SECONDS",
                           help="grace of a stop or reboot (default 60)"))),
        _named("stop", cmd_stop, "stop a container: halt signal, then SIGKILL after -t",
               Option("-t", "--timeout", value=float, default=60.0, metavar="SECONDS",
                      help="seconds to wait before killing (default 60)"),
               Option("-k", "--kill", help="kill at once"),
               Option("-r", "--reboot", help="reboot a system container (lxc.signal.reboot, "
                      "default SIGINT); returns once it runs again, within -t"), many=True),
        _named("kill", cmd_kill, "send a signal to every process of a container",
               Option("-s", "--signal", value=str, default="SIGKILL", metavar="SIGNAL",
                      help="name or number (default SIGKILL)"), many=True),
        _named("freeze", cmd_freeze, "freeze containers; returns once FROZEN", many=True),
        _named("unfreeze", cmd_unfreeze, "thaw frozen containers; returns once RUNNING",
               many=True),
        _named("info", cmd_info, "show a container's state, PID and resource use", _JSON),
        _named("ps", cmd_ps, "list a container's processes", _JSON),
        Command("top", "a live view of every container (q quits; keys sort)", cmd_top,
                options=(Option("-i", "--interval", value=float, default=1.0, metavar="SECONDS",
                                help="seconds between refreshes (default 1)"),)),
        Command("ls", "list containers", cmd_ls, options=(
            Option("-f", "--fancy", help="a table with state and PID"),
            Option("--fleet", help="every host's containers (a daemon with --nats)"), _JSON)),
        _named("priority", cmd_priority, "read or set CPU priority (cpu.shares semantics)",
               Option("-p", "--priority", value=int, metavar="VALUE",
                      help="new value (2..262144)")),
        _named("cgroup", cmd_cgroup, "read or write a cgroup attribute", arguments=(
            Argument("key", "attribute, e.g. cpu.shares or memory.max"),
            Argument("value", "new value", optional=True))),
        Command("monitor", "print state changes as they happen", cmd_monitor, options=(
            Option("-n", "--name", value=str, append=True, metavar="REGEX",
                   help="regex over container names (repeatable; default all)"),
            Option("--json", help="one JSON object per event"),
            Option("--fleet", help="every host's events, from NATS (ids are stream sequences)"),
            Option("--since", value=str, metavar="WHEN",
                   help="replay from an event id or a time first"),
            Option("--follow", negatable=True, default=True,
                   help="keep printing new events (default) or stop after the replay"))),
        Command("wait", "wait until containers are in one of some states, or healthy", cmd_wait,
                options=(
            Option("-n", "--name", value=str, append=True, required=True,
                   help="container name, or HOST:NAME on another host (repeatable: all "
                        "must match)"),
            Option("-s", "--states", value=str, help="states, as 'RUNNING|FROZEN'"),
            Option("--healthy", help="RUNNING and found healthy by its health rule"),
            Option("-t", "--timeout", value=float, metavar="SECONDS",
                   help="seconds (default: forever)"),
            Option("--json", help="print the states reached"),
            Option("--thaw",
                   help="unfreeze any of them that is FROZEN (e.g. by an idle rule) first"))),
        Command("rules", "check a rules directory, or list the loaded rules", cmd_rules_list,
                options=(Option("--json", help="list as JSON"),), arguments=(
            Argument("action", "check: validate DIRECTORY (no daemon needed); "
                               "list: the daemon's rules", choices=("check", "list")),
            Argument("directory", f"for check (default {DEFAULT_RULES})", optional=True,
                     default=DEFAULT_RULES))),
        Command("net", "bridges for containers: add, delete, list", cmd_net, subcommands=(
            Command("bridge-add", "create a bridge (forward delay 0, up, no uplink)", options=(
                Option("--ipv4", value=str, metavar="ADDRESS/PREFIXLEN",
                       help="the bridge's own address, as ADDRESS/PREFIXLEN"),
                Option("--uplink", value=str, metavar="INTERFACE",
                       help="enslave this interface (never done unless asked)"),
            ), arguments=(Argument("bridge", "bridge name (at most 15 characters)"),)),
            Command("bridge-del", "remove a bridge that has no ports left",
                    arguments=(Argument("bridge", "bridge name"),)),
            Command("ls", "list the host's bridges", options=(Option("--json", help="as JSON"),)),
        )),
        Command("checkconfig", "what this kernel supports, and whether NATS answers", options=(
            Option("--nats", value=str, metavar="URL",
                   help="the NATS to try (default LXCFLOW_NATS)"),)),
        Command("daemon", "run the supervisor in the foreground", options=(
            Option("--log-format", value=str, choices=("console", "json"), default="console",
                   help="how the daemon logs (default console)"),
            Option("--log-level", value=str, choices=("debug", "info", "warning", "error"),
                   default="info", help="the lowest level logged (default info)"),
            Option("--journal-max-events", value=int, default=100_000, metavar="N",
                   help="events the journal keeps at most (default 100000)"),
            Option("--journal-max-age", value=float, default=7 * 86400, metavar="SECONDS",
                   help="seconds the journal keeps an event (default 7 days)"),
            Option("--hooks", value=str, default="/etc/lxcflow/hooks", metavar="DIR",
                   help="executables run on every transition (default /etc/lxcflow/hooks)"),
            Option("--hook-timeout", value=float, default=30.0, metavar="SECONDS",
                   help="seconds a hook may run before it is killed (default 30)"),
            Option("--rules", value=str, metavar="DIR",
                   help=f"rules directory, watched for edits (default {DEFAULT_RULES}, "
                        "if it exists)"),
            Option("--restart-budget", value=float, default=120.0, metavar="N",
                   help="restarts a minute across all containers, at most (default 120)"),
            Option("--metrics", value=str, metavar="HOST:PORT",
                   help="serve Prometheus metrics on http://HOST:PORT/metrics"),
            Option("--nats", value=str, metavar="URL",
                   help="publish events and states to NATS JetStream at URL[,URL...] "
                        "(LXCFLOW_NATS)"),
            Option("--host", value=str, metavar="NAME",
                   help="this host's name in the fleet (LXCFLOW_HOST, default the hostname's "
                        "first label)"),
            Option("--nats-creds", value=str, metavar="FILE",
                   help="NATS credentials: a .creds file or an nkey seed"),
            Option("--nats-replicas", value=int, default=1, metavar="N",
                   help="replicas of the stream and bucket it creates (default 1; 3 in a "
                        "cluster)"),
            Option("--ready-fd", value=int, help=None),  # a spawning client's, not people's
        )),
    ),
)


def parse_args(argv: Sequence[str]) -> Parsed:
    """``argv`` (without the program name) as the command table reads it.

    Raises:
        CommandLineError: a usage mistake.
        HelpRequested: ``-h``/``--help``.
    """
    return parse(COMMANDS, argv)


def _import_site_packages() -> None:
    """Make trio and pyroute2 importable when Python runs without site (``-S``).

    The fast launcher (:mod:`lxcflow.launcher`) skips site, which costs every
    call milliseconds; the daemon and checkconfig need the packages it adds.
    """
    if sys.flags.no_site:
        import site

        site.main()


def _fleet_options(args: Parsed) -> FleetOptions | None:
    """``--nats`` and company, or LXCFLOW_NATS / LXCFLOW_HOST (a daemon
    started on demand has only the environment)."""
    import os

    from lxcflow.daemon.options import FleetOptions

    url = args.nats or os.environ.get("LXCFLOW_NATS")
    if not url:
        for flag in ("host", "nats_creds"):
            if getattr(args, flag):
                raise UsageError(f"--{flag.replace('_', '-')} needs --nats")
        if args.nats_replicas != 1:
            raise UsageError("--nats-replicas needs --nats")
        return None
    host = args.host or os.environ.get("LXCFLOW_HOST") or os.uname().nodename.split(".")[0]
    if args.nats_creds:
        _import_site_packages()  # nkeys reads the seed
    return FleetOptions.parse(url, host, args.nats_creds, args.nats_replicas)


def run_daemon(args: Parsed, paths: Paths) -> int:
    """``lxcflow daemon``: check its options, then run the supervisor until stopped."""
    from pathlib import Path

    from lxcflow.daemon.options import Address, DaemonOptions

    options = DaemonOptions(
        paths, log_format=args.log_format, log_level=args.log_level,
        journal_max_events=args.journal_max_events, journal_max_age_s=args.journal_max_age,
        hooks_dir=Path(args.hooks).absolute(), hook_timeout=args.hook_timeout,
        rules_dir=Path(args.rules or DEFAULT_RULES).absolute(),
        restart_budget=args.restart_budget, ready_fd=args.ready_fd,
        metrics=Address.parse(args.metrics) if args.metrics else None,
        fleet=_fleet_options(args),
    )
    if args.rules is not None and not options.rules_dir.is_dir():  # type: ignore[union-attr]
        raise UsageError(f"--rules {args.rules}: no such directory")
    _import_site_packages()
    from lxcflow.daemon import main as daemon  # the only command that needs trio

    return daemon.run(options)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code (0 ok, 1 failed, 2 usage)."""
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except HelpRequested as request:
        print(request.text)
        return 0
    except CommandLineError as e:
        print(e, file=sys.stderr)
        return 2
    paths = Paths.from_env(args.lxcpath, args.socket, args.cgroup_parent)
    try:
        if args.cmd == "daemon":
            return run_daemon(args, paths)
        if args.cmd == "rules" and args.action == "check":
            return rules_check(args.directory)
        if args.cmd == "checkconfig":
            _import_site_packages()
            from lxcflow import checkconfig

            return checkconfig.run(args.nats)
        with Client(paths, spawn=not args.no_spawn) as client:
            return int(args.handler(args, client))
    except LxcflowError as e:
        print(f"lxcflow {args.cmd}: {e.message}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
