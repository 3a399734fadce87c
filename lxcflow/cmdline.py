"""A small command-line parser driven by a declarative table of commands.

The ``lxcflow`` command is a new process per call; argparse cost it about
30 ms (its import, and a HelpFormatter per option of ~20 subparsers). This
parses what lxcflow's table declares, builds the help from the same table,
and imports nothing.

A command line is ``PROG [OPTIONS] COMMAND [OPTIONS] [ARGUMENTS]``, nested
as deep as the table is. The root command's options are global: accepted
at any level. ``--opt VALUE``, ``--opt=VALUE``, ``-o VALUE`` and ``-oVALUE``
all work; after ``--`` everything is an argument.
"""

from __future__ import annotations

# Imported on every lxcflow call: typing costs milliseconds there.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any

#: what a converter's value must be, as an error message says it
_TYPE_NAMES: dict[Any, str] = {int: "a whole number", float: "a number"}
_HELP_FLAGS = ("-h", "--help")


class CommandLineError(Exception):
    """A usage mistake: ``str()`` is the one line to print (exit code 2)."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(f"{prog}: error: {message}")


class HelpRequested(Exception):
    """``-h``/``--help`` was given: ``text`` is the help to print (exit code 0)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class Option:
    """A flag (``value=None``) or an option taking one value, converted by ``value``.

    Args:
        flags: e.g. ``"-n", "--name"``; the last one names the attribute.
        value: ``str``, ``int`` or ``float`` for an option taking a value.
        help: one line; None hides the option from the help.
        default: when absent (flags default to False, appended lists to None).
        required: a usage error when absent.
        choices: the values allowed.
        append: repeatable; the attribute is the list of values given.
        negatable: a flag with a ``--no-`` form too (``--follow``/``--no-follow``).
        metavar: what the help calls the value (default: the choices, or the
            attribute's name upper-cased).
    """

    __slots__ = ("flags", "dest", "value", "help", "default", "required", "choices", "append",
                 "negatable", "metavar")

    def __init__(
        self, *flags: str, value: Callable[[str], Any] | None = None, help: str | None = "",
        default: Any = None, required: bool = False, choices: Sequence[str] = (),
        append: bool = False, negatable: bool = False, metavar: str | None = None,
    ) -> None:
        self.flags = flags
        self.dest = flags[-1].lstrip("-").replace("-", "_")
        self.value = value
        self.help = help
        if default is None and value is None:
            default = False  # a flag not given
        self.default = default
        self.required = required
        self.choices = choices
        self.append = append
        self.negatable = negatable
        self.metavar = metavar or (
            "{" + ",".join(choices) + "}" if choices else self.dest.upper()
        )

    def spelling(self) -> str:
        """``-t/--timeout``, as an error message names the option."""
        return "/".join(self.flags)

    def convert(self, prog: str, text: str) -> Any:
        """``text`` as this option's value.

        Raises:
            CommandLineError: not one of the choices, or not of the value's type.
        """
        assert self.value is not None
        if self.choices and text not in self.choices:
            raise CommandLineError(
                prog, f"invalid {self.spelling()} {text!r} (choose from {', '.join(self.choices)})"
            )
        try:
            return self.value(text)
        except ValueError:
            kind = _TYPE_NAMES.get(self.value, "valid")
            raise CommandLineError(prog, f"{self.spelling()}: {text!r} is not {kind}") from None


class Argument:
    """A positional argument.

    Args:
        name: the attribute; upper-cased in messages (and in usage and help,
            where choices are listed instead if there are any).
        optional: may be left out (then ``default``).
        choices: the values allowed.
        rest: the command line's remainder from here (or after ``--``), verbatim:
            a command to run, with its own options. Only the last argument.
    """

    __slots__ = ("name", "help", "optional", "default", "choices", "rest")

    def __init__(
        self, name: str, help: str, *, optional: bool = False, default: Any = None,
        choices: Sequence[str] = (), rest: bool = False,
    ) -> None:
        self.name = name
        self.help = help
        self.optional = optional or rest
        self.default = [] if rest else default
        self.choices = choices
        self.rest = rest

    @property
    def metavar(self) -> str:
        """What usage and help call it: its choices, or its name upper-cased."""
        return "{" + ",".join(self.choices) + "}" if self.choices else self.name.upper()


class Command:
    """A command: its options and arguments, or subcommands, and the handler to run.

    Args:
        name: as typed; the program name for the root.
        help: one line, shown in the parent's list and atop this one's help.
        handler: what runs it (a subcommand without one runs its parent's).
        subcommands: chosen by the first argument, which is stored as ``choice``.
        metavar: what usage and help call a subcommand (default ``choice`` upper-cased).
    """

    __slots__ = ("name", "help", "handler", "options", "arguments", "subcommands", "choice",
                 "metavar")

    def __init__(
        self, name: str, help: str, handler: Any = None, *, options: Sequence[Option] = (),
        arguments: Sequence[Argument] = (), subcommands: Sequence[Command] = (),
        choice: str = "action", metavar: str | None = None,
    ) -> None:
        self.name = name
        self.help = help
        self.handler = handler
        self.options = options
        self.arguments = arguments
        self.subcommands = {sub.name: sub for sub in subcommands}
        self.choice = choice
        self.metavar = metavar or choice.upper()

    def rest(self) -> Argument | None:
        """The argument taking the remainder of the command line, if any."""
        return next((a for a in self.arguments if a.rest), None)


class Parsed:
    """A parsed command line: an attribute per option and argument of the commands
    given, plus ``handler``, the deepest handler along them (None if none has one)."""

    handler: Any

    if TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any: ...


def parse(root: Command, argv: Sequence[str]) -> Parsed:
    """Parse ``argv`` (without the program name) by the table under ``root``.

    Raises:
        CommandLineError: a usage mistake.
        HelpRequested: ``-h``/``--help``, for the command it follows.
    """
    parsed = Parsed()
    path = [root]
    node, prog = root, root.name
    flags: dict[str, Option] = {}
    seen: set[Option] = set()
    positional: list[str] = []
    _enter(root, parsed, flags)
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        rest = node.rest()
        if arg == "--":
            if rest is not None:
                setattr(parsed, rest.name, list(argv[i:]))
            else:
                positional += argv[i:]
            break
        if _looks_like_option(arg):
            if arg in _HELP_FLAGS:
                raise HelpRequested(help_text(path))
            i = _take_option(prog, flags, seen, parsed, argv, i)
            continue
        if node.subcommands:
            sub = node.subcommands.get(arg)
            if sub is None:
                raise CommandLineError(prog, f"unknown {node.metavar.lower()} {arg!r} "
                                             f"(choose from {', '.join(node.subcommands)})")
            _finish(prog, node, seen, positional, parsed)
            setattr(parsed, node.choice, arg)
            path.append(sub)
            node, prog = sub, f"{prog} {arg}"
            _enter(sub, parsed, flags)
            continue
        if rest is not None and len(positional) == len(node.arguments) - 1:
            # The first word past the fixed arguments starts the remainder.
            setattr(parsed, rest.name, list(argv[i - 1:]))
            break
        positional.append(arg)
    if node.subcommands:
        raise CommandLineError(prog, f"missing {node.metavar} "
                                     f"(one of {', '.join(node.subcommands)})")
    _finish(prog, node, seen, positional, parsed)
    parsed.handler = next((c.handler for c in reversed(path) if c.handler is not None), None)
    return parsed


def _looks_like_option(arg: str) -> bool:
    if not arg.startswith("-") or arg == "-":
        return False
    try:
        float(arg)  # a negative number is a value, as argparse has it
    except ValueError:
        return True
    return False


def _enter(command: Command, parsed: Parsed, flags: dict[str, Option]) -> None:
    """Make a command's options known and give them (and its arguments) defaults."""
    for option in command.options:
        for flag in option.flags:
            flags[flag] = option
        if option.negatable:
            flags["--no-" + option.flags[-1][2:]] = option
        setattr(parsed, option.dest, option.default)
    for argument in command.arguments:
        setattr(parsed, argument.name, argument.default)


def _take_option(
    prog: str, flags: dict[str, Option], seen: set[Option], parsed: Parsed,
    argv: Sequence[str], i: int,
) -> int:
    """Store the option at ``argv[i - 1]``; returns the index after what it used."""
    arg = argv[i - 1]
    flag, attached = arg, None
    if arg.startswith("--"):
        if "=" in arg:
            flag, attached = arg.split("=", 1)
    elif arg not in flags and arg[:2] in flags:
        flag, attached = arg[:2], arg[2:].removeprefix("=")
    option = flags.get(flag)
    if option is None:
        raise CommandLineError(prog, f"unknown option {flag!r}")
    seen.add(option)
    if option.value is None:
        if attached is not None:
            raise CommandLineError(prog, f"{flag} takes no value")
        setattr(parsed, option.dest, flag in option.flags)  # else its --no- form
        return i
    if attached is None:
        if i == len(argv) or _looks_like_option(argv[i]):
            raise CommandLineError(prog, f"{option.spelling()} needs a value")
        attached = argv[i]
        i += 1
    value = option.convert(prog, attached)
    if option.append:
        value = [*(getattr(parsed, option.dest) or ()), value]
    setattr(parsed, option.dest, value)
    return i


def _finish(
    prog: str, command: Command, seen: set[Option], positional: list[str], parsed: Parsed
) -> None:
    """Check what a command needs and hand out its positional arguments."""
    missing = [o.spelling() for o in command.options if o.required and o not in seen]
    fixed = [a for a in command.arguments if not a.rest]
    missing += [a.name.upper() for a in fixed[len(positional):] if not a.optional]
    if missing:
        raise CommandLineError(prog, f"missing {', '.join(missing)}")
    if len(positional) > len(fixed):
        raise CommandLineError(prog, f"unexpected argument {positional[len(fixed)]!r}")
    for argument, text in zip(fixed, positional, strict=False):
        if argument.choices and text not in argument.choices:
            raise CommandLineError(prog, f"invalid {argument.name.upper()} {text!r} "
                                         f"(choose from {', '.join(argument.choices)})")
        setattr(parsed, argument.name, text)
    positional.clear()


# ------------------------------------------------------------------ help


def help_text(path: Sequence[Command]) -> str:
    """The help of ``path[-1]`` (``path`` runs from the root): usage, then each part."""
    root, command = path[0], path[-1]
    words = ["usage:", *(c.name for c in path), "[options]"]
    words += [f"{o.flags[0]} {o.metavar}" for o in command.options if o.required]
    words += [_usage_argument(a) for a in command.arguments]
    if command.subcommands:
        words.append(f"{command.metavar} ...")
    lines = [" ".join(words), "", command.help]
    if command.subcommands:
        lines += ["", f"{command.metavar.lower()}s:"]
        lines += _columns((name, sub.help) for name, sub in command.subcommands.items())
    if command.arguments:
        lines += ["", "arguments:"]
        lines += _columns((a.metavar, a.help) for a in command.arguments)
    lines += ["", "options:"]
    lines += _columns([("-h, --help", "show this help and exit")] + _option_rows(command))
    if command is not root:
        lines += ["", "global options (before or after the command):"]
        lines += _columns(_option_rows(root))
    return "\n".join(lines)


def _usage_argument(argument: Argument) -> str:
    if argument.rest:
        return f"[-- {argument.metavar} ...]"
    return f"[{argument.metavar}]" if argument.optional else argument.metavar


def _option_rows(command: Command) -> list[tuple[str, str]]:
    rows = []
    for option in command.options:
        if option.help is None:
            continue
        left = ", ".join(option.flags)
        if option.negatable:
            left += ", --no-" + option.flags[-1][2:]
        if option.value is not None:
            left += " " + option.metavar
        rows.append((left, option.help))
    return rows


def _columns(rows: Iterable[tuple[str, str]]) -> list[str]:
    """Two columns, the second aligned; a long first column pushes its text below."""
    rows = list(rows)
    width = min(max((len(left) for left, _ in rows), default=0), 28) + 4
    lines = []
    for left, text in rows:
        if len(left) + 4 > width:
            lines += [f"  {left}", " " * width + text]
        else:
            lines.append(f"  {left.ljust(width - 2)}{text}")
    return lines
