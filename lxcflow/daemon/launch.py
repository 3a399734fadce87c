"""The start pipeline: from a config to a :class:`Run` whose init has exec'd.

In LXC's order: host hooks that run before anything, a fresh run directory,
cgroups with the config's settings, the spec for the shim, the network
(interfaces need netlink, here in the daemon; a namespace with lo alone the
shim makes itself), then the shim, which reports the exec. A start that
fails at any step releases what it made before the error leaves.
"""

from __future__ import annotations

import functools
import itertools
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import trio

from lxcflow.cgroups import ContainerCgroup, V2Cgroup
from lxcflow.config import ContainerConfig
from lxcflow.config.idmap import host_root
from lxcflow.daemon import hooks
from lxcflow.daemon.container import Container
from lxcflow.daemon.run import CgroupTree, Run, release
from lxcflow.errors import ConfigError, LxcflowError, NetworkError, StartFailed
from lxcflow.paths import Paths
from lxcflow.runstate import (
    CONFIG_FILE,
    CONSOLE_SOCKET,
    EXIT_FILE,
    SPEC_FILE,
    Interface,
    RunState,
)
from lxcflow.runtime import apparmor, device_program, proc, shim, userns
from lxcflow.runtime.confinement import confinement_for
from lxcflow.runtime.device_rules import device_rules
from lxcflow.runtime.spec import ConsoleLog, RunMode, build_spec, container_env, write_spec
from lxcflow.states import Actor, Cause


@dataclass(frozen=True, slots=True)
class Launch:
    """What one start of a container asks for."""

    config: ContainerConfig
    config_path: Path
    mode: RunMode
    command: list[str]
    stdio: tuple[int, int, int] | None  # None: a console the keeper logs and serves
    cwd: str | None  # the caller's directory (used only on the host's root)
    env: Mapping[str, str]  # added to the container's environment
    by: Actor | Cause  # who asked (a user, a rule), or REBOOT: the init itself


class AddressClaims:
    """Which container holds which address, so two starts cannot take one.

    Args:
        running: the interfaces of every running container, by its name.
    """

    def __init__(self, running: Callable[[], Iterable[tuple[str, tuple[Interface, ...]]]]) -> None:
        self._running = running
        self._starting: dict[str, str] = {}  # address -> container starting

    def claim(self, name: str, config: ContainerConfig) -> list[str]:
        """Claim the addresses ``config`` asks for; returns them for :meth:`drop`
        (once the run holding them is visible to ``running``, or the start failed).

        Raises:
            NetworkError: one is used by another container.
        """
        wanted = {ip.split("/")[0]: ip for net in config.networks for ip in (*net.ipv4, *net.ipv6)}
        in_use = dict(self._starting)
        for other, interfaces in self._running():
            if other != name:
                in_use.update({ip.split("/")[0]: other for i in interfaces
                               for ip in (*i.ipv4, *i.ipv6)})
        for ip, text in wanted.items():
            if ip in in_use:
                raise NetworkError(f"address {text} already used by {in_use[ip]}")
        self._starting.update(dict.fromkeys(wanted, name))
        return list(wanted)

    def drop(self, addresses: list[str]) -> None:
        """The start that claimed them is over (its run now shows them, or it failed)."""
        for ip in addresses:
            self._starting.pop(ip, None)


class Launcher:
    """Makes runs.

    Args:
        paths: where configs and run directories live.
        tree: the cgroup tree (create and remove, one batch at a time).
        shim_binary: the built ``lxcflow-shim``.
        claims: the addresses in use.
        hook_timeout: seconds an ``lxc.hook.*`` command may run.
    """

    def __init__(self, paths: Paths, tree: CgroupTree, shim_binary: Path, claims: AddressClaims,
                 hook_timeout: float) -> None:
        self.paths = paths
        self.tree = tree
        self.shim_binary = shim_binary
        self.claims = claims
        self.hook_timeout = hook_timeout
        self.hierarchies = tree.manager.hierarchies()  # what lxc.mount.auto = cgroup mounts

    async def launch(self, c: Container, launch: Launch) -> Run:
        """Make the run; everything made is released again if it fails.

        Raises:
            StartFailed, ConfigError, NetworkError, CgroupError, OSError: what stopped it.
        """
        config = launch.config
        if "stop" in config.hooks:
            # LXC runs it once the container is down, with handles on its
            # namespaces passed as arguments: a keeper that has exited holds none.
            raise StartFailed("lxc.hook.stop is not supported by lxcflow (lxc.hook.post-stop "
                              "runs on the host after the container stopped)")
        if not await hooks.run_lxc(c.name, config, "pre-start", self.hook_timeout):
            raise StartFailed("lxc.hook.pre-start failed")
        run_dir = self.paths.run_dir(c.name)
        cgroup: ContainerCgroup | None = None
        interfaces: tuple[Interface, ...] = ()
        claimed: list[str] = []  # held until the run shows them (no await in between)
        try:
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir.mkdir(parents=True, mode=0o700)
            config_path = launch.config_path
            if c.ephemeral:
                shutil.copyfile(config_path, run_dir / CONFIG_FILE)
                config_path = run_dir / CONFIG_FILE
            if config.rootfs is not None and not config.rootfs.is_dir():
                raise StartFailed(f"rootfs {config.rootfs} is not a directory")
            cgroup = await self.tree.create(c.name)
            self._device_rules(c, cgroup, config)
            for setting in config.cgroup:
                if setting.key.startswith("devices."):
                    continue  # written above, the native set
                try:
                    cgroup.set(setting.key, setting.value)
                except LxcflowError as e:
                    raise ConfigError(str(e), file=config.file, line=setting.line) from None
            idmapped = userns.idmaps_rootfs(config)
            if config.idmap:
                self._unprivileged(c, cgroup, config, idmapped)
            # An unprivileged container's is the one its user namespace owns.
            prepared_netns = "net" in config.new_namespaces and (
                config.makes_interfaces or bool(config.idmap))
            confinement = await confinement_for(config, self.shim_binary,
                                                self.paths.seccomp_cache)
            if confinement.apparmor.outcome is apparmor.Outcome.INCOMPLETE:
                c.log.warning("apparmor_incomplete", reason="lxc.apparmor.allow_incomplete: "
                              "running without an AppArmor profile")
            spec = build_spec(
                name=c.name, mode=launch.mode, config=config, command=launch.command,
                cgroup_procs=cgroup.procs_files(), exit_file=run_dir / EXIT_FILE,
                env=container_env(config, launch.env), cwd=launch.cwd, netns=prepared_netns,
                hierarchies=self.hierarchies, confinement=confinement,
                idmapped_rootfs=idmapped,
                console=None if launch.stdio is not None else ConsoleLog(
                    self.paths.console_log(c.name, config.console_logfile, ephemeral=c.ephemeral),
                    config.console_size, run_dir / CONSOLE_SOCKET),
            )
            write_spec(run_dir / SPEC_FILE, spec)
            opened: list[int] = []
            try:
                stdio = launch.stdio
                if stdio is None:
                    opened.append(os.open(os.devnull, os.O_RDWR))
                    stdio = (opened[0], opened[0], opened[0])
                netns = user = None
                if config.idmap:
                    made = await trio.to_thread.run_sync(
                        functools.partial(userns.create, self.shim_binary, config.idmap,
                                          net=prepared_netns))
                    user, netns = made.user, made.net
                    opened += [fd for fd in (made.user, made.net) if fd is not None]
                if prepared_netns and config.makes_interfaces:
                    # Claimed while netlink works, so two starts cannot both
                    # take one address.
                    claimed = self.claims.claim(c.name, config)
                    netns, interfaces = await self._prepare_network(config, netns)
                    opened.append(netns)
                running = await shim.spawn(self.shim_binary, run_dir / SPEC_FILE, stdio=stdio,
                                           netns=netns, userns=user)
            finally:
                # The namespace is the container's now, or (a failed start) nobody's.
                for fd in opened:
                    os.close(fd)
        except BaseException:
            self.claims.drop(claimed)
            await release(c.log, self.tree, run_dir, cgroup=cgroup, interfaces=interfaces)
            raise
        record = RunState(
            name=c.name, mode=launch.mode, shim_pid=running.pid,
            shim_start=proc.start_time(running.pid) or 0, init_pid=running.init_pid,
            started_ns=time.time_ns(), config_file=str(config_path), ephemeral=c.ephemeral,
            command=tuple(launch.command), interfaces=interfaces,
            confinement=tuple(confinement.records()),
        )
        run = Run(record, run_dir, running, cgroup, c.log)
        try:
            record.save(run_dir)
        except BaseException:
            await run.teardown(self.tree, c.next_change)
            raise
        finally:
            self.claims.drop(claimed)
        return run

    def _device_rules(self, c: Container, cgroup: ContainerCgroup,
                      config: ContainerConfig) -> None:
        """The devices the container may use (runtime/device_rules.py): on
        the v1 controller, or as a device program on a cgroup2-only host.

        Raises:
            ConfigError: the kernel refused a rule of the config's, or one
                does not parse.
            LxcflowError: the device program could not be attached.
        """
        if isinstance(cgroup, V2Cgroup):
            program = []
            for key, value, line in device_rules(config, cgroup2=True):
                try:
                    program.append(device_program.parse_rule(key == "devices.allow", value))
                except ValueError as e:
                    raise ConfigError(str(e), file=config.file, line=line) from None
            device_program.attach(cgroup.path, program)
            return
        # a run of rules for one file through one open: a start writes 17
        # of them by default
        for key, group in itertools.groupby(device_rules(config), key=lambda rule: rule[0]):
            rules = list(group)
            try:
                cgroup.set_each(key, [value for _, value, _ in rules])
            except LxcflowError as e:
                line = rules[e.details.get("index", 0)][2]
                if line is None:
                    raise
                raise ConfigError(str(e), file=config.file, line=line) from None

    def _unprivileged(self, c: Container, cgroup: ContainerCgroup,
                      config: ContainerConfig, idmapped: bool) -> None:
        """What container root owns on the host: its cgroup subtree. And,
        with an ``idmapped`` rootfs, what no host user may reach it through:
        the container's directory, where the files it writes as root are
        host root's, setuid ones included (a tree LXC shifted keeps LXC's
        modes: what is written there is the mapped root's).

        Raises:
            CgroupError: the subtree could not be given.
        """
        uid, gid = host_root(config.idmap)
        cgroup.delegate(uid, gid)
        directory = self.paths.container_dir(c.name)
        if idmapped and config.rootfs is not None and config.rootfs.is_relative_to(directory):
            directory.chmod(0o700)

    async def started(self, c: Container, config: ContainerConfig) -> None:
        """LXC runs start-host just before the init starts; here the init has
        just been exec'd, which is as close as a host-side hook can get.

        Raises:
            StartFailed: the hook failed.
        """
        if not await hooks.run_lxc(c.name, config, "start-host", self.hook_timeout):
            raise StartFailed("lxc.hook.start-host failed")

    async def _prepare_network(self, config: ContainerConfig,
                               netns: int | None) -> tuple[int, tuple[Interface, ...]]:
        """The network namespace the container will join (an fd: a new one,
        or a copy of ``netns``), its interfaces up.

        Raises:
            NetworkError: netlink said no.
        """
        from lxcflow import network  # pyroute2 costs a quarter second: only when used

        prepared = await trio.to_thread.run_sync(network.prepare, config.networks, netns)
        return prepared.netns, prepared.interfaces
