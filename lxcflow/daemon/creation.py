"""How a container comes to be on disk: a copy of the user's config (its
relative paths made absolute), and what a template adds to it. Either all
of ``<lxcpath>/NAME`` is there and its config loads, or none of it is.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import trio

from lxcflow.config import NetConfig, absolutize, load_config
from lxcflow.daemon import templates
from lxcflow.errors import UsageError
from lxcflow.paths import Paths

# Container root is host uid and gid 100000, and 65536 ids from there: the
# range LXC's documentation and Debian's /etc/subuid give the first user.
UNPRIVILEGED_IDMAP = "lxc.idmap = u 0 100000 65536\nlxc.idmap = g 0 100000 65536\n"


async def make(paths: Paths, name: str, config_file: str | None, template: str | None,
               template_args: Sequence[str], *, unprivileged: bool = False) -> None:
    """Write container ``name``'s directory (the caller checked the name is free).

    Raises:
        UsageError: neither a config nor a template, or no such template;
            ``unprivileged`` for a config that maps ids already.
        ConfigError: the config (or what the template made of it) is wrong.
        LxcflowError: the template failed.
    """
    if config_file is None and template is None:
        raise UsageError("create needs -f CONFIG, -t TEMPLATE or both")
    text = ""
    networks: tuple[NetConfig, ...] = ()
    if config_file is not None:
        source = Path(config_file)
        config = load_config(source)  # every error with file:line, before anything is written
        text = absolutize(source.read_text(), source.parent)
        networks = config.networks
        if unprivileged and config.idmap:
            raise UsageError(f"--unprivileged: {config_file} has lxc.idmap lines already")
        if template is not None and any(n.type == "none" for n in networks):
            raise UsageError("a template's container needs a network of its own: "
                             "lxc.net.N.type = none shares the host's")
    if unprivileged:
        text += UNPRIVILEGED_IDMAP
    if template is not None:
        if not networks:
            # Never the host's network: a template's sshd must not bind
            # the host's port 22.
            text += "lxc.net.0.type = empty\n"
        await _from_template(paths, name, text, templates.find(template), template_args,
                             unprivileged)
    else:
        _write_config(paths, name, text, unprivileged)


def _mode(unprivileged: bool) -> int:
    # What an unprivileged container's root writes is host root's on disk
    # (setuid files too): no host user may reach it.
    return 0o700 if unprivileged else 0o755


async def _from_template(paths: Paths, name: str, text: str, template: Path,
                         args: Sequence[str], unprivileged: bool) -> None:
    # In its final place: templates write absolute paths (the rootfs)
    # into the config. Whatever goes wrong, none of it stays.
    directory = paths.container_dir(name)
    directory.mkdir(mode=_mode(unprivileged))
    try:
        (directory / "config").write_text(text)
        await templates.run(template, name=name, directory=directory, args=args)
        load_config(directory / "config")  # what the template wrote, checked now
    except BaseException:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(shutil.rmtree, directory, True)
        raise


def _write_config(paths: Paths, name: str, text: str, unprivileged: bool) -> None:
    tmp = paths.lxcpath / f".{name}.creating"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(mode=_mode(unprivileged))
        (tmp / "config").write_text(text)
        os.rename(tmp, paths.container_dir(name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
