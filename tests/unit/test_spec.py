"""Config -> shim spec: mount flags, namespaces, records."""

from __future__ import annotations

from pathlib import Path

import pytest

from lxcflow.config import MountEntry, parse_config
from lxcflow.errors import ConfigError, UsageError
from lxcflow.runtime import mountops, spec


def entry(options: str, fstype: str = "none") -> MountEntry:
    return MountEntry("/bin", "bin", fstype, tuple(options.split(",")), "/f", 3)


def test_readonly_bind_needs_the_remount_step() -> None:
    op = mountops.mount_op(entry("ro,bind"))
    assert op.flags == mountops.MS_BIND | mountops.MS_RDONLY
    assert op.opts == mountops.OPT_BIND_RO
    assert op.fstype == ""


def test_rw_bind_and_recursive() -> None:
    op = mountops.mount_op(entry("rbind,nosuid,create=dir,optional"))
    assert op.flags == mountops.MS_BIND | mountops.MS_REC | mountops.MS_NOSUID
    assert op.opts == mountops.OPT_MKDIR | mountops.OPT_OPTIONAL


def test_filesystem_options_pass_through_as_data() -> None:
    op = mountops.mount_op(entry("nodev,size=10m,mode=755", fstype="tmpfs"))
    assert op.flags == mountops.MS_NODEV
    assert op.data == "size=10m,mode=755"
    assert op.fstype == "tmpfs"


def test_later_option_wins() -> None:
    assert mountops.mount_op(entry("ro,rw,bind")).flags == mountops.MS_BIND


def test_non_bind_without_type_is_a_config_error_at_its_line() -> None:
    with pytest.raises(ConfigError, match=r"^/f:3: mount of /bin on bin needs"):
        mountops.mount_op(entry("ro"))


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("bin", "bin"),  # relative to the container's root
        ("/bin", "/bin"),  # lxcflow's own reading: inside the container too
        ("/srv/r/bin", "/bin"),  # the host's path of the rootfs, as lxc-sshd writes
        ("/srv/r/usr/lib", "/usr/lib"),
        ("/srv/r", "/"),
        ("/srv/r/", "/"),
        ("/srv/rx/bin", "/srv/rx/bin"),  # only whole path components match
        ("/srv/real/bin", "/bin"),  # through the symlink's target as well
    ],
)
def test_fstab_targets_inside_the_container(tmp_path: Path, target: str,
                                            expected: str) -> None:
    (tmp_path / "srv" / "real").mkdir(parents=True)
    (tmp_path / "srv" / "r").symlink_to("real")
    rootfs = tmp_path / "srv" / "r"
    # The cases are written for /srv: this tree's paths stand in for it.
    mapped = target.replace("/srv", str(tmp_path / "srv"), 1)
    result = mountops.container_target(mapped, rootfs)
    assert result == expected.replace("/srv", str(tmp_path / "srv"), 1)


def test_fstab_targets_without_a_rootfs_stay_as_written() -> None:
    assert mountops.container_target("/srv/r/bin", None) == "/srv/r/bin"


def test_spec_records(tmp_path: Path) -> None:
    config = parse_config(
        "lxc.uts.name = box\nlxc.rootfs.path = /srv/r\n"
        "lxc.mount.entry = /bin bin none ro,bind 0 0\n"
        "lxc.net.0.type = veth\n",
        file="/c", base_dir=tmp_path,
    )
    data = spec.build_spec(
        name="web", mode=spec.RunMode.APP, config=config, command=["sh", "-c", "echo hi"],
        cgroup_procs=[Path("/cg/a/cgroup.procs")], exit_file=Path("/run/x/exit"),
        env={"PATH": "/bin", "A": "x=y"}, cwd="/home",
    )
    records = data.split(b"\0")[:-1]
    # The container's environment travels in the spec, never in the shim's own.
    assert [r for r in records if r.startswith(b"env=")] == [b"env=PATH=/bin", b"env=A=x=y"]
    assert b"mode=app" in records
    assert b"hostname=box" in records
    assert b"rootfs=/srv/r" in records
    assert b"cwd=/" in records  # the caller's cwd means nothing inside a rootfs
    flags = int(next(r for r in records if r.startswith(b"ns="))[3:])
    assert flags == sum(spec.CLONE_FLAGS[n] for n in ("mnt", "uts", "ipc", "net", "cgroup"))
    assert [r for r in records if r.startswith(b"arg=")] == [b"arg=sh", b"arg=-c", b"arg=echo hi"]
    bind_ro = mountops.MS_BIND | mountops.MS_RDONLY
    assert b"mount=/bin\x1fbin\x1f\x1f%d\x1f\x1f8" % bind_ro in records


@pytest.mark.parametrize(("net", "joined", "loopback"), [
    ("lxc.net.0.type = veth\n", True, False),  # the daemon configures it
    ("lxc.net.0.type = empty\n", True, True),  # the user namespace's own, lo up by the shim
    ("", False, False),  # the host's
])
def test_an_unprivileged_container_joins_the_namespaces_the_daemon_made(
        tmp_path: Path, net: str, joined: bool, loopback: bool) -> None:
    config = parse_config(f"lxc.rootfs.path = /srv/r\n{net}lxc.idmap = u 0 100000 65536\n"
                          "lxc.idmap = g 0 100000 65536\n", file="/c", base_dir=tmp_path)
    records = spec.build_spec(
        name="u", mode=spec.RunMode.SYSTEM, config=config, command=["/sbin/init"],
        cgroup_procs=[], exit_file=Path("/e"), env={}, netns=joined,
    ).split(b"\0")
    assert b"userns=1" in records
    assert (b"netns=1" in records, b"loopback=1" in records) == (joined, loopback)
    # the user namespace is never unshared by the shim, nor the one it joins
    flags = int(next(r for r in records if r.startswith(b"ns="))[3:])
    assert flags == sum(spec.CLONE_FLAGS[n] for n in ("mnt", "uts", "ipc", "cgroup"))


def test_hostname_defaults_to_name_and_cwd_to_callers_on_host_root(tmp_path: Path) -> None:
    config = parse_config("lxc.environment = A=1\n", file="/c", base_dir=tmp_path)
    records = spec.build_spec(
        name="web", mode=spec.RunMode.SYSTEM, config=config, command=["true"], cgroup_procs=[],
        exit_file=Path("/e"), env={}, cwd="/home",
    ).split(b"\0")
    assert b"hostname=web" in records
    assert b"cwd=/home" in records
    assert spec.container_env(config, {"TERM": "xterm"})["A"] == "1"


def test_nul_in_command_is_refused(tmp_path: Path) -> None:
    config = parse_config("", file="/c", base_dir=tmp_path)
    with pytest.raises(UsageError, match="NUL byte"):
        spec.build_spec(name="w", mode=spec.RunMode.APP, config=config, command=["a\0b"],
                        cgroup_procs=[], exit_file=Path("/e"), env={})


@pytest.mark.parametrize("key", ["", "A=B"])
def test_bad_environment_names_are_refused(tmp_path: Path, key: str) -> None:
    config = parse_config("", file="/c", base_dir=tmp_path)
    with pytest.raises(UsageError, match="invalid environment variable name"):
        spec.build_spec(name="w", mode=spec.RunMode.APP, config=config, command=["true"],
                        cgroup_procs=[], exit_file=Path("/e"), env={key: "1"})


def records_of(tmp_path: Path, text: str, *, mode: spec.RunMode = spec.RunMode.SYSTEM,
               console: bool = True) -> list[bytes]:
    config = parse_config(text, file="/c", base_dir=tmp_path)
    log = spec.ConsoleLog(Path("/l/console.log"), 1 << 20, Path("/r/console.sock"))
    return spec.build_spec(
        name="web", mode=mode, config=config, command=["/sbin/init"], cgroup_procs=[],
        exit_file=Path("/e"), env={}, console=log if console else None,
    ).split(b"\0")


def test_ttys_are_announced_by_their_devpts_names(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    records = records_of(tmp_path, "lxc.rootfs.path = r\nlxc.tty.max = 3\nlxc.tty.dir = lxc\n")
    assert {b"ttys=3", b"ttydir=lxc", b"console=1", b"log=/l/console.log",
            b"logsize=1048576", b"sock=/r/console.sock"} <= set(records)
    # pts/0 is the console; systemd starts container-getty@N on each pts/N
    assert b"env=container_ttys=pts/1 pts/2 pts/3" in records
    without = records_of(tmp_path, "lxc.rootfs.path = r\nlxc.tty.max = 2\n"
                                   "lxc.console.path = none\n")
    assert b"console=0" in without
    assert b"env=container_ttys=pts/0 pts/1" in without


def test_a_foreground_start_has_no_console_log(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    records = records_of(tmp_path, "lxc.rootfs.path = r\n", console=False)
    assert not [r for r in records if r.startswith((b"log=", b"console=", b"sock="))]


def test_limits_personality_and_the_keepers_death_signal(tmp_path: Path) -> None:
    records = records_of(tmp_path, "lxc.prlimit.nofile = 1024:4096\nlxc.prlimit.core = unlimited\n"
                                   "lxc.arch = i686\nlxc.monitor.signal.pdeath = SIGTERM\n")
    assert b"prlimit=7:1024:4096" in records
    assert b"prlimit=4:%d:%d" % (2**64 - 1, 2**64 - 1) in records
    assert b"personality=linux32" in records
    assert b"pdeath=15" in records


def test_the_confinement_records_are_the_keepers_and_attachs_alike(tmp_path: Path) -> None:
    from lxcflow.runtime.apparmor import Decision, Outcome
    from lxcflow.runtime.attach import AttachSpec
    from lxcflow.runtime.confinement import Confinement

    confined = Confinement(0x1001, Path("/run/s/ab.bpf"), True,
                           Decision(Outcome.PROFILE, "lxc-container-default-cgns"))
    wanted = {b"capkeep=1001", b"seccomp=/run/s/ab.bpf", b"nonewprivs=1",
              b"apparmor=lxc-container-default-cgns"}
    config = parse_config("", file="/c", base_dir=tmp_path)
    keeper = spec.build_spec(name="w", mode=spec.RunMode.SYSTEM, config=config,
                             command=["true"], cgroup_procs=[], exit_file=Path("/e"), env={},
                             confinement=confined).split(b"\0")
    attach = AttachSpec(1, (), ("true",), {},
                        confinement=tuple(confined.records())).encode().split(b"\0")
    assert wanted <= set(keeper)
    assert wanted <= set(attach)
    # without AppArmor, and without no_new_privs, those records are absent
    plain = Confinement(0x1001, Path("/p.bpf"), False, Decision(Outcome.NOT_ENABLED))
    assert [r for r in plain.records() if r[0] in ("apparmor", "nonewprivs")] == []
