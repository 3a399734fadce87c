"""``python -m lxcflow.launcher DEST``: write the fast ``lxcflow`` command at DEST.

pip's console-script wrapper runs Python with site (5-8 ms here) and imports
``re`` (about 14 ms) to tidy argv[0]; the command itself costs little more
than that. The launcher runs this Python with ``-I`` (no PYTHON* variables,
no user site) and ``-S`` (no site), and puts the directory holding the
lxcflow package first on sys.path itself. The commands that need
site-packages (daemon, checkconfig) run site when they start.

The shebang says ``-IS``: Linux passes all that follows the interpreter as
one argument, and Python would refuse ``-I -S`` as the single option.
"""

from __future__ import annotations

import os
import sys

import lxcflow

#: Linux reads at most this many bytes of a shebang line (BINPRM_BUF_SIZE)
MAX_SHEBANG = 255


def script(python: str, package_parent: str) -> str:
    """The launcher's text: run ``python`` isolated, lxcflow found in ``package_parent``.

    Python compiles a script on every run (only imported modules are cached),
    so the body stays a few lines.
    """
    return (
        f"#!{python} -IS\n"
        "import sys\n"
        f"sys.path.insert(0, {package_parent!r})\n"
        "from lxcflow.cli import main\n"
        "sys.exit(main())\n"
    )


def write(dest: str) -> None:
    """Write the launcher for this Python and this lxcflow at ``dest``, executable.

    The file is replaced in one step: a running ``lxcflow`` never reads half of it.

    Raises:
        ValueError: this Python's path cannot go in a shebang line.
    """
    python = sys.executable  # as invoked: a venv's python is a symlink that must stay one
    text = script(python, os.path.dirname(os.path.dirname(os.path.abspath(lxcflow.__file__))))
    shebang = text.split("\n", 1)[0]
    if not os.path.isabs(python) or any(c.isspace() for c in python):
        raise ValueError(f"{python!r} cannot go in a shebang line (needs an absolute path "
                         "without spaces)")
    if len(shebang.encode()) > MAX_SHEBANG:
        raise ValueError(f"{python!r} is too long for a shebang line")
    tmp = f"{dest}.tmp"
    with open(tmp, "w") as out:
        out.write(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, dest)


def main(argv: list[str]) -> int:
    """``python -m lxcflow.launcher DEST``; returns the exit code."""
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python -m lxcflow.launcher DEST", file=sys.stderr)
        return 2
    try:
        write(argv[0])
    except OSError as e:
        print(f"lxcflow.launcher: {argv[0]}: {e.strerror}", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"lxcflow.launcher: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
