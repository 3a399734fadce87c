"""How LXC runs a container's ``lxc.hook.*`` command: its arguments and
environment, the same whether the daemon runs it on the host or the keeper
inside the container's namespaces."""

from __future__ import annotations

from pathlib import Path

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: the hooks the keeper runs in the container's namespaces while it sets
#: the container up, in this order (as LXC: pre-mount before any mount,
#: mount after the mount entries, autodev once /dev is there, start in the
#: container's root just before its init)
INSIDE_HOOKS = ("pre-mount", "mount", "autodev", "start")


def lxc_env(name: str, hook_type: str, config_file: str, rootfs: Path | None) -> dict[str, str]:
    """LXC's hook environment."""
    return {
        "PATH": DEFAULT_PATH,
        "LXC_NAME": name,
        "LXC_HOOK_TYPE": hook_type,
        "LXC_HOOK_SECTION": "lxc",
        "LXC_CONFIG_FILE": config_file,
        "LXC_ROOTFS_PATH": str(rootfs) if rootfs else "",
        "LXC_ROOTFS_MOUNT": str(rootfs) if rootfs else "/",
    }


def lxc_argv(command: str, name: str, hook_type: str) -> list[str]:
    """``sh -c`` the configured line, as LXC does; name, section and type follow
    as positional arguments, so nothing of the container's is ever parsed."""
    return ["/bin/sh", "-c", f'{command} "$@"', "sh", name, "lxc", hook_type]
