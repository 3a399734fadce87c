"""The command-line parser, on lxcflow's own command table."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lxcflow import cli, commands
from lxcflow.cli import COMMANDS, DEFAULT_RULES, parse_args
from lxcflow.cmdline import Command, CommandLineError, HelpRequested


def mistake(*argv: str) -> str:
    with pytest.raises(CommandLineError) as e:
        parse_args(argv)
    return str(e.value)


def command_paths(command: Command = COMMANDS) -> Iterator[list[str]]:
    for name, sub in command.subcommands.items():
        yield [name]
        for deeper in command_paths(sub):
            yield [name, *deeper]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "lxcflow: error: missing COMMAND (one of create, destroy, start,"),
        (("bogus",), "lxcflow: error: unknown command 'bogus' (choose from create,"),
        (("start",), "lxcflow start: error: missing -n/--name"),
        (("info", "-n"), "lxcflow info: error: -n/--name needs a value"),
        (("info", "-n", "--json"), "lxcflow info: error: -n/--name needs a value"),
        (("info", "-n", "x", "--bogus"), "lxcflow info: error: unknown option '--bogus'"),
        (("info", "-n", "x", "--bogus=1"), "lxcflow info: error: unknown option '--bogus'"),
        (("info", "-n", "x", "-kf"), "lxcflow info: error: unknown option '-kf'"),
        (("info", "-n", "x", "--json=yes"), "lxcflow info: error: --json takes no value"),
        (("info", "-n", "x", "extra"), "lxcflow info: error: unexpected argument 'extra'"),
        (("stop", "-n", "x", "-t", "soon"),
         "lxcflow stop: error: -t/--timeout: 'soon' is not a number"),
        (("stop", "-n", "x", "--timeout=soon"),
         "lxcflow stop: error: -t/--timeout: 'soon' is not a number"),
        (("priority", "-n", "x", "-p", "1.5"),
         "lxcflow priority: error: -p/--priority: '1.5' is not a whole number"),
        (("daemon", "--log-format", "xml"),
         "lxcflow daemon: error: invalid --log-format 'xml' (choose from console, json)"),
        (("rules",), "lxcflow rules: error: missing ACTION"),
        (("rules", "nope"),
         "lxcflow rules: error: invalid ACTION 'nope' (choose from check, list)"),
        (("cgroup", "-n", "x"), "lxcflow cgroup: error: missing KEY"),
        (("cgroup", "-n", "x", "a", "b", "c"), "lxcflow cgroup: error: unexpected argument 'c'"),
        (("wait",), "lxcflow wait: error: missing -n/--name"),
        (("net",), "lxcflow net: error: missing ACTION (one of bridge-add, bridge-del, ls)"),
        (("net", "bridge-up"), "lxcflow net: error: unknown action 'bridge-up'"),
        (("net", "bridge-add"), "lxcflow net bridge-add: error: missing BRIDGE"),
        (("net", "ls", "--ipv4", "x"), "lxcflow net ls: error: unknown option '--ipv4'"),
        (("--lxcpath",), "lxcflow: error: -P/--lxcpath needs a value"),
        (("--", "info"), "lxcflow: error: missing COMMAND"),
    ],
)
def test_a_usage_mistake_is_one_line_naming_the_command(
    argv: tuple[str, ...], message: str
) -> None:
    text = mistake(*argv)
    assert text.startswith(message)
    assert "\n" not in text


def test_global_options_and_their_equals_forms() -> None:
    a = parse_args(["--lxcpath=/l", "--socket=/s", "--cgroup-parent=cg", "--no-spawn",
                    "info", "--name=web"])
    assert (a.lxcpath, a.socket, a.cgroup_parent, a.no_spawn, a.name) == (
        "/l", "/s", "cg", True, "web")
    b = parse_args(["info", "-n", "web"])
    assert (b.lxcpath, b.socket, b.cgroup_parent, b.no_spawn) == (None, None, None, False)
    assert parse_args(["net", "ls", "-P", "/l"]).lxcpath == "/l"


@pytest.mark.parametrize("argv", [["-n", "web"], ["--name", "web"], ["--name=web"], ["-nweb"],
                                  ["-n=web"]])
def test_every_spelling_of_a_value(argv: list[str]) -> None:
    assert parse_args(["info", *argv]).name == "web"


def test_a_value_may_contain_equals_signs_and_look_negative() -> None:
    assert parse_args(["cgroup", "-n", "x", "k", "a=b"]).value == "a=b"
    assert parse_args(["stop", "-n", "x", "--timeout=-1"]).timeout == -1.0
    assert parse_args(["stop", "-n", "x", "-t", "-1"]).timeout == -1.0
    assert parse_args(["kill", "-n", "x", "-s", "-9"]).signal == "-9"


def test_typed_values_and_defaults() -> None:
    a = parse_args(["stop", "-n", "x"])
    assert (a.timeout, a.kill) == (60.0, False)
    a = parse_args(["stop", "-n", "x", "-t", "0.3", "-k"])
    assert (a.timeout, a.kill) == (0.3, True)
    assert parse_args(["priority", "-n", "x", "-p", "512"]).priority == 512
    assert parse_args(["priority", "-n", "x"]).priority is None
    assert parse_args(["kill", "-n", "x"]).signal == "SIGKILL"
    d = parse_args(["daemon"])
    assert (d.log_format, d.journal_max_events, d.hook_timeout, d.rules, d.ready_fd) == (
        "console", 100_000, 30.0, None, None)
    assert parse_args(["daemon", "--ready-fd", "5"]).ready_fd == 5


def test_repeatable_options_and_negatable_flags() -> None:
    a = parse_args(["monitor"])
    assert (a.name, a.follow, a.since) == (None, True, None)
    a = parse_args(["monitor", "-n", "a", "--name", "b", "-n=c", "--no-follow", "--since", "5m"])
    assert (a.name, a.follow, a.since) == (["a", "b", "c"], False, "5m")
    assert parse_args(["monitor", "--no-follow", "--follow"]).follow is True
    w = parse_args(["wait", "-n", "a", "-n", "b", "-s", "RUNNING|FROZEN", "--thaw"])
    assert (w.name, w.states, w.thaw, w.timeout) == (["a", "b"], "RUNNING|FROZEN", True, None)


def test_optional_positionals() -> None:
    a = parse_args(["rules", "check"])
    assert (a.action, a.directory) == ("check", DEFAULT_RULES)
    assert parse_args(["rules", "check", "/r"]).directory == "/r"
    c = parse_args(["cgroup", "-n", "x", "cpu.shares"])
    assert (c.key, c.value) == ("cpu.shares", None)
    c = parse_args(["cgroup", "cpu.shares", "512", "-n", "x"])
    assert (c.key, c.value, c.name) == ("cpu.shares", "512", "x")


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["start", "-n", "w"], []),
        (["start", "-n", "w", "--"], []),
        (["start", "-n", "w", "--", "sleep", "1000"], ["sleep", "1000"]),
        (["start", "-n", "w", "sleep", "1000"], ["sleep", "1000"]),
        # From the command on, everything is the command's: options, --, -h.
        (["execute", "-n", "w", "ls", "-l", "-n", "x"], ["ls", "-l", "-n", "x"]),
        (["execute", "-n", "w", "--", "sh", "-h", "--", "x"], ["sh", "-h", "--", "x"]),
        (["execute", "-n", "w", "--", "--help"], ["--help"]),
    ],
)
def test_the_command_to_run_is_the_remainder(argv: list[str], command: list[str]) -> None:
    assert parse_args(argv).command == command


def test_double_dash_makes_arguments_of_what_looks_like_options() -> None:
    a = parse_args(["cgroup", "-n", "x", "--", "-weird", "--json"])
    assert (a.key, a.value) == ("-weird", "--json")


def test_nested_commands_and_handlers() -> None:
    a = parse_args(["net", "bridge-add", "br0", "--ipv4", "198.18.0.1/24"])
    assert (a.cmd, a.action, a.bridge, a.ipv4, a.uplink) == (
        "net", "bridge-add", "br0", "198.18.0.1/24", None)
    assert a.handler is commands.cmd_net
    assert parse_args(["net", "ls", "--json"]).json is True
    assert parse_args(["info", "-n", "x"]).handler is commands.cmd_info
    assert parse_args(["daemon"]).handler is None  # main() runs it, without a client


@pytest.mark.parametrize("path", list(command_paths()), ids=" ".join)
def test_help_for_every_command_comes_from_the_table(path: list[str]) -> None:
    with pytest.raises(HelpRequested) as e:
        parse_args([*path, "--help"])
    text = e.value.text
    assert text.startswith(f"usage: lxcflow {' '.join(path)} [options]")
    command = COMMANDS
    for name in path:
        command = command.subcommands[name]
    assert command.help in text
    for option in [*command.options, *COMMANDS.options]:
        assert (option.flags[-1] in text) == (option.help is not None)
    for argument in command.arguments:
        assert argument.help in text
    for sub in command.subcommands.values():
        assert sub.help in text


def test_help_wins_over_a_mistake_and_lists_the_commands() -> None:
    with pytest.raises(HelpRequested) as e:
        parse_args(["-h"])
    assert e.value.text.startswith("usage: lxcflow [options] COMMAND ...")
    assert all(f"  {name} " in e.value.text for name in COMMANDS.subcommands)
    with pytest.raises(HelpRequested, match="usage: lxcflow start"):
        parse_args(["start", "-h"])  # no -n: help all the same


def test_main_prints_help_or_the_one_line_mistake(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["stop", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: lxcflow stop [options] -n NAME")
    assert cli.main(["stop", "-n", "x", "-t", "soon"]) == 2
    assert capsys.readouterr().err == (
        "lxcflow stop: error: -t/--timeout: 'soon' is not a number\n")
