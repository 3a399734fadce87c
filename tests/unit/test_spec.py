"""Config -> shim spec: mount flags, namespaces, records."""

from __future__ import annotations

from pathlib import Path

import pytest

from lxcflow.config import MountEntry, parse_config
from lxcflow.errors import ConfigError, UsageError
from lxcflow.runtime import spec


def entry(options: str, fstype: str = "none") -> MountEntry:
    return MountEntry("/bin", "bin", fstype, tuple(options.split(",")), "/f", 3)


def test_readonly_bind_needs_the_remount_step() -> None:
    op = spec.mount_op(entry("ro,bind"))
    assert op.flags == spec.MS_BIND | spec.MS_RDONLY
    assert op.opts == spec.OPT_BIND_RO
    assert op.fstype == ""


def test_rw_bind_and_recursive() -> None:
    op = spec.mount_op(entry("rbind,nosuid,create=dir,optional"))
    assert op.flags == spec.MS_BIND | spec.MS_REC | spec.MS_NOSUID
    assert op.opts == spec.OPT_MKDIR | spec.OPT_OPTIONAL


def test_filesystem_options_pass_through_as_data() -> None:
    op = spec.mount_op(entry("nodev,size=10m,mode=755", fstype="tmpfs"))
    assert op.flags == spec.MS_NODEV
    assert op.data == "size=10m,mode=755"
    assert op.fstype == "tmpfs"


def test_later_option_wins() -> None:
    assert spec.mount_op(entry("ro,rw,bind")).flags == spec.MS_BIND


def test_non_bind_without_type_is_a_config_error_at_its_line() -> None:
    with pytest.raises(ConfigError, match=r"^/f:3: mount of /bin on bin needs"):
        spec.mount_op(entry("ro"))


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
    result = spec.container_target(mapped, rootfs)
    assert result == expected.replace("/srv", str(tmp_path / "srv"), 1)


def test_fstab_targets_without_a_rootfs_stay_as_written() -> None:
    assert spec.container_target("/srv/r/bin", None) == "/srv/r/bin"


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
    assert flags == sum(spec.CLONE_FLAGS[n] for n in ("mnt", "uts", "ipc", "net"))
    assert [r for r in records if r.startswith(b"arg=")] == [b"arg=sh", b"arg=-c", b"arg=echo hi"]
    assert b"mount=/bin\x1fbin\x1f\x1f%d\x1f\x1f8" % (spec.MS_BIND | spec.MS_RDONLY) in records


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
