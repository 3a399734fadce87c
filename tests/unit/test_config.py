"""lxcflow.config: both LXC dialects, LXC 5's key semantics, includes, every error at
its file:line, absolutize."""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path

import pytest

from lxcflow.config import (
    ContainerConfig,
    MountEntry,
    NetConfig,
    absolutize,
    load_config,
    parse_config,
    parse_fstab,
    parse_mount_entry,
)
from lxcflow.config.idmap import IdMap, host_root
from lxcflow.errors import ConfigError

SSH_OLD = """\
lxc.utsname = my_ssh_container
lxc.network.type = veth
lxc.network.flags = up
lxc.network.link = br0
lxc.network.ipv4 = 10.0.2.16/24
lxc.network.name = eth0
lxc.mount = ./fstab
lxc.rootfs = ./rootfs
"""

SSH_NEW = """\
lxc.uts.name = my_ssh_container
lxc.net.0.type = veth
lxc.net.0.flags = up
lxc.net.0.link = br0
lxc.net.0.ipv4.address = 10.0.2.16/24
lxc.net.0.name = eth0
lxc.mount.fstab = ./fstab
lxc.rootfs.path = ./rootfs
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def ssh_dir(tmp_path: Path) -> Path:
    """A container directory as lxc-sshd makes it: read-only binds of the host's tools."""
    root = tmp_path / "ssh" / "rootfs"
    fstab = "".join(f"/{d} {root}/{d} none ro,bind 0 0\n" for d in ("bin", "sbin", "lib"))
    write(tmp_path / "ssh" / "fstab", fstab)
    return tmp_path / "ssh"


def config_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path / "config", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


# ---------------------------------------------------------------- the seed's container


def test_seed_ssh_config_old_dialect(ssh_dir: Path) -> None:
    config = load_config(write(ssh_dir / "config", SSH_OLD))

    assert config.file == str(ssh_dir / "config")
    assert config.hostname == "my_ssh_container"
    assert config.rootfs == ssh_dir / "rootfs"
    assert config.fstab == ssh_dir / "fstab"
    assert config.networks == (
        NetConfig(
            index=0,
            type="veth",
            link="br0",
            flags=("up",),
            name="eth0",
            hwaddr=None,
            mtu=None,
            ipv4=("10.0.2.16/24",),
            ipv4_gateway=None,
            ipv6=(),
            ipv6_gateway=None,
            veth_pair=None,
            line=2,
        ),
    )
    fstab = str(ssh_dir / "fstab")
    assert config.mount_entries == tuple(
        MountEntry(f"/{d}", f"{ssh_dir}/rootfs/{d}", "none", ("ro", "bind"), fstab, n)
        for n, d in enumerate(("bin", "sbin", "lib"), start=1)
    )
    assert config.new_namespaces == {"pid", "mnt", "uts", "ipc", "net", "cgroup"}
    assert config.hooks == {}
    assert config.cgroup == ()


def test_seed_ssh_config_new_dialect_is_the_same_container(ssh_dir: Path) -> None:
    old = load_config(write(ssh_dir / "config", SSH_OLD))
    new = load_config(write(ssh_dir / "config.new", SSH_NEW))

    assert new.file == str(ssh_dir / "config.new")
    assert new == dataclasses.replace(old, file=new.file)


def test_relative_paths_follow_the_config_not_the_cwd(
    ssh_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(ssh_dir / "config", SSH_OLD)
    monkeypatch.chdir(tmp_path)

    config = load_config(Path("ssh") / "config")

    assert config.file == os.path.join("ssh", "config")
    assert config.rootfs == ssh_dir / "rootfs"
    assert config.mount_entries[0].file == str(ssh_dir / "fstab")


def test_paths_are_normalised_without_following_symlinks(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    text = "lxc.rootfs.path = dir:./link/../link/rootfs/\n"

    config = parse_config(text, file="c", base_dir=tmp_path)

    assert config.rootfs == tmp_path / "link" / "rootfs"


def test_absolute_rootfs_is_kept(tmp_path: Path) -> None:
    config = parse_config("lxc.rootfs.path = /srv/r\n", file="c", base_dir=tmp_path)
    assert config.rootfs == Path("/srv/r")


# ---------------------------------------------------------------- accepted values


def test_comments_blanks_and_whitespace(tmp_path: Path) -> None:
    text = "# a comment\n\n   \n\t# indented comment\n  lxc.init.cmd\t=  /bin/echo a#b  \r\n"
    config = parse_config(text, file="c", base_dir=tmp_path)
    assert config.init_cmd == ("/bin/echo", "a#b")


def test_a_config_that_sets_nothing(tmp_path: Path) -> None:
    config = parse_config("# only a comment\n", file="c", base_dir=tmp_path)
    assert config == ContainerConfig(file="c")
    assert config.new_namespaces == {"pid", "mnt", "uts", "ipc", "cgroup"}


def test_network_values(tmp_path: Path) -> None:
    text = """\
lxc.net.0.type = macvlan
lxc.net.0.link = eth1
lxc.net.0.hwaddr = 00:16:3e:Xx:aB:09
lxc.net.0.mtu = 9000
lxc.net.0.ipv4.address = 198.18.0.2
lxc.net.0.ipv4.address = 198.18.1.2/255.255.255.0 198.18.1.255
lxc.net.0.ipv4.gateway = auto
lxc.net.0.ipv6.address = fd00::2
lxc.net.0.ipv6.gateway = FD00::1
lxc.net.0.veth.pair = vethweb0
"""
    (net,) = parse_config(text, file="c", base_dir=tmp_path).networks

    assert net.type == "macvlan"
    assert net.link == "eth1"
    assert net.hwaddr == "00:16:3e:Xx:aB:09"
    assert net.mtu == 9000
    assert net.ipv4 == ("198.18.0.2/24", "198.18.1.2/24")
    assert net.ipv4_gateway == "auto"
    assert net.ipv6 == ("fd00::2/64",)
    assert net.ipv6_gateway == "fd00::1"
    assert net.veth_pair == "vethweb0"
    assert net.flags == ()
    assert net.line == 1


def test_old_dialect_broadcast_is_dropped_and_networks_are_numbered(tmp_path: Path) -> None:
    text = """\
lxc.network.type = veth
lxc.network.ipv4 = 10.0.2.16/24 10.0.2.255
lxc.network.link = br0
lxc.network.type = empty
lxc.network.link = br1
"""
    first, second = parse_config(text, file="c", base_dir=tmp_path).networks

    assert (first.index, first.ipv4, first.link, first.line) == (0, ("10.0.2.16/24",), "br0", 1)
    assert (second.index, second.type, second.link, second.line) == (1, "empty", "br1", 4)


def test_networks_in_both_dialects_are_ordered_by_index(tmp_path: Path) -> None:
    text = """\
lxc.net.3.link = br3
lxc.net.3.type = veth
lxc.network.type = phys
lxc.network.link = eth9
lxc.net.1.type = empty
"""
    nets = parse_config(text, file="c", base_dir=tmp_path).networks

    assert [(n.index, n.type, n.line) for n in nets] == [
        (1, "empty", 5),
        (3, "veth", 1),
        (4, "phys", 3),
    ]


def test_empty_net_key_clears_the_networks(tmp_path: Path) -> None:
    text = """\
lxc.net.0.type = veth
lxc.net.0.link = br0
lxc.network =
lxc.net.0.type = empty
lxc.network.type = veth
lxc.net =
lxc.network.type = veth
lxc.network.link = br1
"""
    (net,) = parse_config(text, file="c", base_dir=tmp_path).networks
    assert (net.index, net.type, net.link, net.line) == (0, "veth", "br1", 7)


def test_cgroup_settings_keep_every_line_in_order(tmp_path: Path) -> None:
    text = """\
lxc.cgroup.cpu.shares = 512
lxc.cgroup2.memory.max = 256M
lxc.cgroup.cpu.shares = 1024
lxc.cgroup.memory.limit_in_bytes = 1G
lxc.cgroup2.cpuset.cpus.partition = root
"""
    settings = parse_config(text, file="c", base_dir=tmp_path).cgroup

    assert [(s.key, s.value, s.version, s.line) for s in settings] == [
        ("cpu.shares", "512", 1, 1),
        ("memory.max", "256M", 2, 2),
        ("cpu.shares", "1024", 1, 3),
        ("memory.limit_in_bytes", "1G", 1, 4),
        ("cpuset.cpus.partition", "root", 2, 5),
    ]


def test_hooks_in_order_with_relative_executables_resolved(tmp_path: Path) -> None:
    text = """\
lxc.hook.version = 1
lxc.hook.pre-start = ./hooks/prep --name web
lxc.hook.start-host = logger started
lxc.hook.pre-start = /usr/bin/true
lxc.hook.post-stop = 'my hooks/../bin dir/clean' "$LXC_NAME" ; echo done
lxc.hook.stop = hooks/stop
"""
    hooks = parse_config(text, file="c", base_dir=tmp_path).hooks

    assert dict(hooks) == {
        "pre-start": (f"{tmp_path}/hooks/prep --name web", "/usr/bin/true"),
        "start-host": ("logger started",),
        "post-stop": (f"'{tmp_path}/bin dir/clean' \"$LXC_NAME\" ; echo done",),
        "stop": (f"{tmp_path}/hooks/stop",),
    }


def test_process_settings(tmp_path: Path) -> None:
    text = """\
lxc.init.cmd = /usr/sbin/sshd -D -o 'Banner none'
lxc.init.cwd = /srv
lxc.environment = PATH=/usr/bin:/bin
lxc.environment = _EMPTY=
lxc.environment = GREETING=a=b c
lxc.namespace.keep = net user
lxc.console.path = none
lxc.signal.halt = sigpwr
lxc.signal.stop = 9
"""
    config = parse_config(text, file="c", base_dir=tmp_path)

    assert config.init_cmd == ("/usr/sbin/sshd", "-D", "-o", "Banner none")
    assert config.init_cwd == "/srv"
    assert config.environment == (("PATH", "/usr/bin:/bin"), ("_EMPTY", ""), ("GREETING", "a=b c"))
    assert config.namespaces_keep == {"net", "user"}
    assert config.console_path == "none"
    assert config.signal_halt == signal.SIGPWR
    assert config.signal_stop == 9


@pytest.mark.parametrize(
    ("value", "number"),
    [
        ("SIGPWR", signal.SIGPWR),
        ("PWR", signal.SIGPWR),
        ("sigterm", signal.SIGTERM),
        ("SIGRTMIN+3", signal.SIGRTMIN + 3),
        ("rtmax-1", signal.SIGRTMAX - 1),
        ("1", 1),
        ("64", 64),
    ],
)
def test_signal_values(tmp_path: Path, value: str, number: int) -> None:
    config = parse_config(f"lxc.signal.halt = {value}\n", file="c", base_dir=tmp_path)
    assert config.signal_halt == number


def test_seccomp_keys(tmp_path: Path) -> None:
    config = parse_config("lxc.seccomp.profile = common.seccomp\nlxc.no_new_privs = 1\n"
                          "lxc.seccomp.allow_nesting = 1\n", file="c", base_dir=tmp_path)
    assert (config.seccomp_profile, config.no_new_privs) == (tmp_path / "common.seccomp", True)
    old = parse_config("lxc.seccomp = /usr/share/lxc/config/common.seccomp\n", file="c",
                       base_dir=tmp_path)
    assert old.seccomp_profile == Path("/usr/share/lxc/config/common.seccomp")
    cleared = "lxc.seccomp.profile = /p\nlxc.seccomp.profile =\n"
    assert parse_config(cleared, file="c", base_dir=tmp_path).seccomp_profile is None


def test_idmap_lines_make_a_user_namespace(tmp_path: Path) -> None:
    text = ("lxc.rootfs.options = idmap=container\n"
            "lxc.idmap = u 0 100000 1000\nlxc.idmap = u 1000 1000 1\n"
            "lxc.id_map = u 1001 101001 64535\nlxc.idmap = g 0 200000 65536\n")
    config = parse_config(text, file="c", base_dir=tmp_path)
    assert config.idmap == (IdMap("u", 0, 100000, 1000, 2), IdMap("u", 1000, 1000, 1, 3),
                            IdMap("u", 1001, 101001, 64535, 4), IdMap("g", 0, 200000, 65536, 5))
    assert "user" in config.new_namespaces
    assert config.rootfs_idmap
    assert host_root(config.idmap) == (100000, 200000)
    assert [m.to_host(1500) for m in config.idmap] == [None, None, 101500, 200000 + 1500]
    # an empty value forgets the ranges read so far, as LXC's clear does
    cleared = parse_config(text + "lxc.idmap =\n", file="c", base_dir=tmp_path)
    assert (cleared.idmap, "user" in cleared.new_namespaces) == ((), False)


def test_one_pair_of_quotes_around_a_value_goes_as_in_lxc(tmp_path: Path) -> None:
    config = parse_config("lxc.uts.name = \"u2\"\nlxc.init.cmd = '/bin/sh -c \"x\"'\n"
                          "lxc.environment = A=\"b\n", file="c", base_dir=tmp_path)
    assert (config.hostname, config.init_cmd) == ("u2", ("/bin/sh", "-c", "x"))
    assert config.environment == (("A", '"b'),)  # no pair: kept as written


def test_an_idmap_error_in_an_include_names_that_file(tmp_path: Path) -> None:
    (tmp_path / "userns.conf").write_text("lxc.idmap = u 0 100000 65536\n")
    with pytest.raises(ConfigError) as err:
        parse_config("lxc.include = userns.conf\n", file="c", base_dir=tmp_path)
    assert str(err.value) == (f"{tmp_path}/userns.conf:1: lxc.idmap maps no g range onto "
                              "container gid 0 (root) (included from c:1)")


def test_terminal_console_and_process_keys(tmp_path: Path) -> None:
    text = """\
lxc.tty.max = 4
lxc.pty.max = 1024
lxc.tty.dir = lxc
lxc.arch = amd64
lxc.console.logfile = /var/log/c.log
lxc.console.size = 64kB
lxc.console.path = none
lxc.autodev = 0
lxc.hook.version = 0
lxc.monitor.unshare = 1
lxc.prlimit.nofile = 1024:4096
lxc.prlimit.nproc = 100
"""
    assert parse_config(text, file="c", base_dir=tmp_path) == ContainerConfig(
        file="c", tty_max=4, pty_max=1024, tty_dir="lxc", arch="linux64",
        console_logfile="/var/log/c.log", console_size=64 << 10, console_path="none",
        autodev=False, prlimits=(("nofile", 1024, 4096), ("nproc", 100, 100)))
    old = "lxc.tty = 4\nlxc.pts = 1024\n"
    assert parse_config(old, file="c", base_dir=tmp_path) == ContainerConfig(
        file="c", tty_max=4, pty_max=1024)
    # an empty value puts a limit back to the kernel's
    cleared = "lxc.prlimit.nofile = 10\nlxc.prlimit.nofile =\n"
    assert parse_config(cleared, file="c", base_dir=tmp_path).prlimits == ()


def test_mount_entries_follow_the_fstab_whatever_the_line_order(tmp_path: Path) -> None:
    write(tmp_path / "fstab", "# host tools\n\n/usr usr none ro,bind 0 0\n")
    text = """\
lxc.mount.entry = /srv/My\\040Data data none rw,bind
lxc.mount.auto = proc:mixed sys:ro
lxc.mount.fstab = fstab
lxc.mount.auto = cgroup:mixed
lxc.mount.entry = tmpfs tmp tmpfs size=10m,mode=1777 0 0
"""
    config = load_config(write(tmp_path / "config", text))

    config_file = str(tmp_path / "config")
    assert config.mount_entries == (
        MountEntry("/usr", "usr", "none", ("ro", "bind"), str(tmp_path / "fstab"), 3),
        MountEntry("/srv/My Data", "data", "none", ("rw", "bind"), config_file, 1),
        MountEntry("tmpfs", "tmp", "tmpfs", ("size=10m", "mode=1777"), config_file, 5),
    )
    assert config.mount_auto == ("proc:mixed", "sys:ro", "cgroup:mixed")


def test_parse_mount_entry_unescapes_octal() -> None:
    entry = parse_mount_entry(r"/a\040b /c\011d\134 ext4 ro 0", file="f", line=9)
    assert entry == MountEntry("/a b", "/c\td\\", "ext4", ("ro",), "f", 9)


def test_config_is_immutable(tmp_path: Path) -> None:
    config = parse_config("lxc.hook.start = /bin/true\n", file="c", base_dir=tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.hostname = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.hooks["stop"] = ("/bin/false",)  # type: ignore[index]
    handed = {"start": ("/bin/true",)}
    built = ContainerConfig(file="c", hooks=handed)
    handed["stop"] = ("/bin/false",)
    assert dict(built.hooks) == {"start": ("/bin/true",)}


# ---------------------------------------------------------------- LXC 5 key semantics


def test_a_later_value_replaces_an_earlier_one(tmp_path: Path) -> None:
    config = load_config(write(tmp_path / "config", (
        "lxc.uts.name = a\n"
        "lxc.utsname = b\n"  # the old spelling is the same key
        "lxc.rootfs.path = /a\n"
        "lxc.rootfs = /b\n"
        "lxc.tty = 1\n"
        "lxc.tty.max = 2\n"
        "lxc.signal.halt = SIGPWR\n"
        "lxc.signal.halt = SIGRTMIN+3\n"
        "lxc.net.0.type = veth\n"
        "lxc.net.0.link = br0\n"
        "lxc.net.0.link = br1\n"
        "lxc.net.0.type = empty\n"
        "lxc.network.type = veth\n"
        "lxc.network.name = a\n"
        "lxc.network.name = b\n"
    )))
    assert config.hostname == "b"
    assert config.rootfs == Path("/b")
    assert config.signal_halt == int(signal.SIGRTMIN) + 3
    assert [(n.type, n.link, n.name) for n in config.networks] == [
        ("empty", "br1", None), ("veth", None, "b"),
    ]


def test_an_empty_value_resets_a_key(tmp_path: Path) -> None:
    config = load_config(write(tmp_path / "config", (
        "lxc.uts.name = a\nlxc.uts.name =\n"
        "lxc.rootfs.path = /a\nlxc.rootfs.path =\n"
        "lxc.init.cmd = /sbin/init\nlxc.init.cmd =\n"
        "lxc.signal.stop = SIGTERM\nlxc.signal.stop =\n"
        "lxc.namespace.keep = net\nlxc.namespace.keep =\n"
        "lxc.tty.dir = lxc\nlxc.tty.dir =\n"
        "lxc.net.0.type = veth\nlxc.net.0.link = br0\nlxc.net.0.link =\n"
    )))
    assert config == ContainerConfig(file=config.file, networks=config.networks)
    assert config.networks[0].link is None


def test_an_empty_value_clears_a_list_key(tmp_path: Path) -> None:
    write(tmp_path / "fstab", "proc proc proc defaults 0 0\n")
    config = load_config(write(tmp_path / "config", (
        "lxc.mount.fstab = fstab\n"
        "lxc.mount.entry = tmpfs tmp tmpfs defaults 0 0\n"
        "lxc.mount.entry =\n"  # the entries so far; the fstab's stay
        "lxc.mount.entry = sysfs sys sysfs ro 0 0\n"
        "lxc.mount.auto = proc sys\nlxc.mount.auto =\nlxc.mount.auto = cgroup\n"
        "lxc.environment = A=1\nlxc.environment =\nlxc.environment = B=2\n"
        "lxc.hook.start = /bin/true\nlxc.hook.stop = /bin/true\nlxc.hook.start =\n"
        "lxc.hook.post-stop = /bin/false\n"
        "lxc.cgroup.cpu.shares = 10\nlxc.cgroup2.cpu.weight = 10\n"
        "lxc.cgroup2.memory.max = 1G\nlxc.cgroup2.memory.max =\n"
        "lxc.cgroup.cpu.shares = 20\nlxc.cgroup2 =\nlxc.cgroup2.pids.max = 5\n"
        "lxc.net.0.type = veth\nlxc.net.0.ipv4.address = 198.18.0.2/24\n"
        "lxc.net.0.ipv4.address =\nlxc.net.0.ipv4.address = 198.18.0.3/24\n"
    )))
    assert [(e.source, e.target) for e in config.mount_entries] == [
        ("proc", "proc"), ("sysfs", "sys"),
    ]
    assert config.mount_auto == ("cgroup",)
    assert config.environment == (("B", "2"),)
    assert dict(config.hooks) == {"stop": ("/bin/true",), "post-stop": ("/bin/false",)}
    assert [(c.key, c.value, c.version) for c in config.cgroup] == [
        ("cpu.shares", "10", 1), ("cpu.shares", "20", 1), ("pids.max", "5", 2),
    ]
    assert config.networks[0].ipv4 == ("198.18.0.3/24",)


def test_lxc_hook_and_lxc_net_empty_clear_everything_so_far(tmp_path: Path) -> None:
    config = load_config(write(tmp_path / "config", (
        "lxc.hook.start = /bin/true\nlxc.hook.stop = /bin/true\nlxc.hook =\n"
        "lxc.hook.stop = /bin/false\n"
        "lxc.net.0.type = veth\nlxc.net =\nlxc.net.1.type = empty\n"
    )))
    assert dict(config.hooks) == {"stop": ("/bin/false",)}
    assert [(n.index, n.type) for n in config.networks] == [(1, "empty")]


# ---------------------------------------------------------------- lxc.include


def test_include_files_and_directories_in_order(tmp_path: Path) -> None:
    write(tmp_path / "common.conf", "lxc.uts.name = common\nlxc.tty.max = 1\n"
                                    "lxc.include = common.conf.d/\n")
    write(tmp_path / "common.conf.d" / "20-b.conf", "lxc.environment = B=2\n")
    write(tmp_path / "common.conf.d" / "10-a.conf", "lxc.environment = A=1\n")
    write(tmp_path / "common.conf.d" / "README", "not a config\n")
    write(tmp_path / "common.conf.d" / "30-c.conf.disabled", "lxc.foo = 1\n")
    config = load_config(write(tmp_path / "ct" / "config", (
        "lxc.environment = FIRST=0\n"
        "lxc.include = ../common.conf\n"
        "lxc.tty.max = 4\n"  # the template's value after the included one
        "lxc.include = /nonexistent-lxcflow-dir/\n"  # a missing directory: skipped
    )))
    assert config.hostname == "common"
    assert config.environment == (("FIRST", "0"), ("A", "1"), ("B", "2"))


def test_a_value_from_an_include_overrides_what_came_before(tmp_path: Path) -> None:
    write(tmp_path / "inc.conf", "lxc.uts.name = included\n")
    config = load_config(write(tmp_path / "config",
                               "lxc.uts.name = first\nlxc.include = inc.conf\n"))
    assert config.hostname == "included"


def test_relative_paths_in_an_include_resolve_against_its_directory(tmp_path: Path) -> None:
    write(tmp_path / "shared" / "fstab", "proc proc proc defaults 0 0\n")
    write(tmp_path / "shared" / "base.conf",
          "lxc.rootfs.path = rootfs\nlxc.mount.fstab = fstab\n")
    config = load_config(write(tmp_path / "ct" / "config",
                               "lxc.include = ../shared/base.conf\n"))
    assert config.rootfs == tmp_path / "shared" / "rootfs"
    assert config.fstab == tmp_path / "shared" / "fstab"
    assert config.file == str(tmp_path / "ct" / "config")


def test_an_error_in_an_include_names_its_file_line_and_the_includes(tmp_path: Path) -> None:
    c = write(tmp_path / "c.conf", "# c\nlxc.foo = 1\n")
    b = write(tmp_path / "b.conf", f"lxc.include = {c}\n")
    a = write(tmp_path / "config", f"lxc.uts.name = a\nlxc.include = {b}\n")
    with pytest.raises(ConfigError) as info:
        load_config(a)
    assert str(info.value) == (
        f"{c}:2: unknown key 'lxc.foo' (included from {b}:1, included from {a}:2)"
    )


def test_a_bad_mount_entry_in_an_include_names_the_include(tmp_path: Path) -> None:
    inc = write(tmp_path / "inc.conf", "lxc.mount.entry = a b\n")
    config = write(tmp_path / "config", "lxc.include = inc.conf\n")
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert str(info.value) == (
        f"{inc}:1: bad mount entry: expected 'source target fstype options [dump [pass]]',"
        f" got 'a b' (included from {config}:1)"
    )


def test_a_network_error_names_the_file_that_started_the_network(tmp_path: Path) -> None:
    inc = write(tmp_path / "inc.conf", "lxc.net.0.type = macvlan\n")
    config = write(tmp_path / "config", "lxc.include = inc.conf\n")
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert str(info.value) == (
        f"{inc}:1: network 0 of type macvlan needs lxc.net.0.link (included from {config}:1)"
    )


@pytest.mark.parametrize("via_directory", [False, True])
def test_include_loops_are_refused(tmp_path: Path, via_directory: bool) -> None:
    a = tmp_path / "config"
    b = tmp_path / "d" / "b.conf"
    write(b, f"lxc.include = {tmp_path / 'd/' if via_directory else a}\n")
    write(a, f"lxc.include = {b}\n")
    with pytest.raises(ConfigError) as info:
        load_config(a)
    looped = b if via_directory else a
    assert str(info.value) == (
        f"{b}:1: lxc.include loops: {a} -> {b} -> {looped} (included from {a}:1)"
    )


def test_a_config_including_itself_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "config", "lxc.include = config\n")
    assert config_error(tmp_path, path.read_text()) == (
        f"{path}:1: lxc.include loops: {path} -> {path}"
    )


# ---------------------------------------------------------------- errors

REFUSED = "is not supported by lxcflow (refusing to run without it)"

ERRORS = [
    ("no-equals", "lxc.uts.name web\n", 1, "expected 'key = value', got 'lxc.uts.name web'"),
    ("no-key", "# c\n = web\n", 2, "no key before '=' in '= web'"),
    ("unknown-key", "# c\n\nlxc.uts.name = a\nlxc.foo = 1\n", 4, "unknown key 'lxc.foo'"),
    (
        "hostname",
        "lxc.uts.name = web server\n",
        1,
        "bad value for lxc.uts.name: 'web server' is not a hostname (1-64 letters, digits, '.-_')",
    ),
    (
        "hostname-long",
        "lxc.utsname = " + "h" * 65 + "\n",
        1,
        f"bad value for lxc.utsname: '{'h' * 65}' is not a hostname (1-64 letters, digits, '.-_')",
    ),
    (
        "ipv4",
        "lxc.net.0.type = veth\nlxc.net.0.ipv4.address = 10.0.0.300/24\n",
        2,
        "bad value for lxc.net.0.ipv4.address: '10.0.0.300/24' is not an IPv4 address with prefix",
    ),
    (
        "ipv4-prefix",
        "lxc.net.0.type = veth\nlxc.net.0.ipv4.address = 10.0.0.1/33\n",
        2,
        "bad value for lxc.net.0.ipv4.address: '10.0.0.1/33' is not an IPv4 address with prefix",
    ),
    (
        "ipv4-given-v6",
        "lxc.network.type = veth\nlxc.network.ipv4 = fd00::1/64\n",
        2,
        "bad value for lxc.network.ipv4: 'fd00::1/64' is not an IPv4 address with prefix",
    ),
    (
        "ipv4-broadcast",
        "lxc.network.type = veth\nlxc.network.ipv4 = 10.0.2.16/24 10.0.2.999\n",
        2,
        "bad value for lxc.network.ipv4: '10.0.2.16/24 10.0.2.999' is not an IPv4 address"
        " with prefix",
    ),
    (
        "ipv6",
        "lxc.net.0.type = veth\nlxc.net.0.ipv6.address = 10.0.0.1/24\n",
        2,
        "bad value for lxc.net.0.ipv6.address: '10.0.0.1/24' is not an IPv6 address with prefix",
    ),
    (
        "gateway",
        "lxc.net.0.type = veth\nlxc.net.0.ipv4.gateway = fd00::1\n",
        2,
        "bad value for lxc.net.0.ipv4.gateway: 'fd00::1' is not an IPv4 address or 'auto'",
    ),
    (
        "hwaddr",
        "lxc.net.0.type = veth\nlxc.net.0.hwaddr = 00:16:3e:zz:00:00\n",
        2,
        "bad value for lxc.net.0.hwaddr: '00:16:3e:zz:00:00' is not a MAC address like"
        " 00:16:3e:xx:xx:xx",
    ),
    (
        "mtu-low",
        "lxc.net.0.type = veth\nlxc.net.0.mtu = 67\n",
        2,
        "bad value for lxc.net.0.mtu: '67' is not an MTU (68-65535)",
    ),
    (
        "mtu-high",
        "lxc.network.type = veth\nlxc.network.mtu = 65536\n",
        2,
        "bad value for lxc.network.mtu: '65536' is not an MTU (68-65535)",
    ),
    (
        "mtu-text",
        "lxc.net.0.type = veth\nlxc.net.0.mtu = 1_500\n",
        2,
        "bad value for lxc.net.0.mtu: '1_500' is not an MTU (68-65535)",
    ),
    (
        "net-type",
        "lxc.net.0.type = bridge\n",
        1,
        "bad value for lxc.net.0.type: 'bridge' is not a network type"
        " (empty, macvlan, none, phys, veth, vlan)",
    ),
    (
        "flags",
        "lxc.network.type = veth\nlxc.network.flags = down\n",
        2,
        "bad value for lxc.network.flags: 'down' is not a flag (up)",
    ),
    (
        "link-too-long",
        "lxc.net.0.type = veth\nlxc.net.0.link = br0123456789abcd\n",
        2,
        "bad value for lxc.net.0.link: 'br0123456789abcd' is not an interface name"
        " (1-15 characters, no '/', ':', blanks)",
    ),
    (
        "name-slash",
        "lxc.net.0.type = veth\nlxc.net.0.name = eth/0\n",
        2,
        "bad value for lxc.net.0.name: 'eth/0' is not an interface name"
        " (1-15 characters, no '/', ':', blanks)",
    ),
    (
        "name-dotdot",
        "lxc.net.0.type = veth\nlxc.net.0.veth.pair = ..\n",
        2,
        "bad value for lxc.net.0.veth.pair: '..' is not an interface name"
        " (1-15 characters, no '/', ':', blanks)",
    ),
    (
        "before-type",
        "lxc.uts.name = a\nlxc.network.link = br0\n",
        2,
        "lxc.network.link comes before any lxc.network.type",
    ),
    (
        "no-type",
        "lxc.uts.name = a\nlxc.net.1.link = br0\nlxc.net.1.name = eth0\n",
        2,
        "network 1 has no type (set lxc.net.1.type)",
    ),
    (
        "phys-without-link",
        "lxc.network.type = phys\nlxc.network.name = eth1\n",
        1,
        "network 0 of type phys needs lxc.network.link",
    ),
    (
        "none-with-others",
        "lxc.net.0.type = none\nlxc.net.1.type = veth\n",
        1,
        "network 0: type none cannot be combined with others",
    ),
    (
        "mixed-dialects",
        "lxc.network.type = veth\nlxc.net.0.link = br0\n",
        2,
        "lxc.net.0.link: network 0 was started by lxc.network.type on line 1;"
        " use one dialect per network",
    ),
    ("net-index", "lxc.net.a.type = veth\n", 1, "bad network index 'a' in lxc.net.a.type"),
    ("net-ipv4-old-name", "lxc.net.0.ipv4 = 10.0.0.1\n", 1, "unknown key 'lxc.net.0.ipv4'"),
    (
        "network-ipv4-new-name",
        "lxc.network.type = veth\nlxc.network.ipv4.address = 10.0.0.1\n",
        2,
        "unknown key 'lxc.network.ipv4.address'",
    ),
    ("net-no-attribute", "lxc.net.0 = veth\n", 1, "unknown key 'lxc.net.0'"),
    (
        "net-reset-with-value",
        "lxc.net = 0\n",
        1,
        "lxc.net takes no value (an empty one clears what was set so far)",
    ),
    (
        "cgroup-key",
        "lxc.cgroup.shares = 5\n",
        1,
        "unknown key 'lxc.cgroup.shares' (cgroup keys look like lxc.cgroup.cpu.shares)",
    ),
    (
        "cgroup2-key",
        "lxc.cgroup2.Memory.max = 1G\n",
        1,
        "unknown key 'lxc.cgroup2.Memory.max' (cgroup keys look like lxc.cgroup.cpu.shares)",
    ),
    (
        "hook-type",
        "lxc.hook.prestart = /bin/true\n",
        1,
        "unknown key 'lxc.hook.prestart' (hooks: autodev, clone, destroy, mount, post-stop,"
        " pre-mount, pre-start, start, start-host, stop)",
    ),
    (
        "hook-quote",
        "lxc.hook.start = /bin/echo 'oops\n",
        1,
        "bad value for lxc.hook.start: No closing quotation",
    ),
    (
        "hook-version",
        "lxc.hook.version = 2\n",
        1,
        "bad value for lxc.hook.version: '2' is not 0 or 1",
    ),
    ("hook-reset-with-value", "lxc.hook = x\n", 1,
     "lxc.hook takes no value (an empty one clears what was set so far)"),
    ("fstab-empty", "lxc.mount.fstab =\n", 1, "empty value for lxc.mount.fstab"),
    ("network-type-empty", "lxc.network.type =\n", 1, "empty value for lxc.network.type"),
    ("include-missing", "lxc.include = nope.conf\n", 1,
     "cannot read included config {dir}/nope.conf: No such file or directory"),
    ("no-new-privs", "lxc.no_new_privs = yes\n", 1,
     "bad value for lxc.no_new_privs: 'yes' is not 0 or 1"),
    ("seccomp-notify", "lxc.seccomp.notify.proxy = unix:/run/p\n", 1,
     f"lxc.seccomp.notify.proxy {REFUSED}"),
    ("seccomp-unknown", "lxc.seccomp.bogus = 1\n", 1, "unknown key 'lxc.seccomp.bogus'"),
    ("idmap-words", "lxc.idmap = u 0 100000\n", 1,
     "bad value for lxc.idmap: 'u 0 100000' is not 'u|g INSIDE OUTSIDE COUNT'"),
    ("idmap-kind", "lxc.idmap = x 0 100000 10\n", 1,
     "bad value for lxc.idmap: 'x 0 100000 10' is not 'u|g INSIDE OUTSIDE COUNT'"),
    ("idmap-number", "lxc.idmap = u 0 -1 10\n", 1,
     "bad value for lxc.idmap: '-1' is not an id or a count"),
    ("idmap-empty-range", "lxc.id_map = g 0 100000 0\n", 1,
     "bad value for lxc.id_map: a range of 0 ids maps nothing"),
    ("idmap-past-last-id", "lxc.idmap = u 0 4294967290 65536\n", 1,
     "bad value for lxc.idmap: the range outside (4294967290+65536) passes the last id "
     "4294967294"),
    ("idmap-overlap-inside", "lxc.idmap = u 0 100000 65536\nlxc.idmap = u 1000 300000 1\n", 2,
     "lxc.idmap: u range 1000 300000 1 overlaps the one of line 1 inside"),
    ("idmap-overlap-host", "lxc.idmap = g 0 100000 65536\nlxc.idmap = g 70000 165535 5\n", 2,
     "lxc.idmap: g range 70000 165535 5 overlaps the one of line 1 on the host"),
    ("idmap-no-root", "lxc.idmap = u 1 100000 65536\nlxc.idmap = g 0 100000 65536\n", 1,
     "lxc.idmap maps no u range onto container uid 0 (root)"),
    ("rootfs-options", "lxc.rootfs.options = idmap=container,ro\n", 1,
     "bad value for lxc.rootfs.options: 'idmap=container,ro' is not 'idmap=container' (the "
     "only rootfs option lxcflow takes)"),
    ("idmap-no-group-root", "lxc.idmap = u 0 100000 65536\n", 1,
     "lxc.idmap maps no g range onto container gid 0 (root)"),
    ("selinux", "lxc.selinux.context = x\n", 1, f"lxc.selinux.context {REFUSED}"),
    (
        "backend",
        "lxc.rootfs.path = btrfs:/srv/r\n",
        1,
        "bad value for lxc.rootfs.path: storage backend btrfs is not supported (only directories)",
    ),
    (
        "backend-old-key",
        "lxc.rootfs = overlay:/a:/b\n",
        1,
        "bad value for lxc.rootfs: storage backend overlay is not supported (only directories)",
    ),
    (
        "dir-nothing",
        "lxc.rootfs.path = dir:\n",
        1,
        "bad value for lxc.rootfs.path: 'dir:' names no directory",
    ),
    (
        "dup-ifname",
        "lxc.net.0.type = veth\nlxc.net.0.name = eth0\nlxc.net.1.type = veth\n"
        "lxc.net.1.name = eth0\n",
        3,
        "network 1: duplicate interface name 'eth0' (also network 0)",
    ),
    (
        "dup-hwaddr",
        "lxc.net.0.type = veth\nlxc.net.0.hwaddr = 02:00:00:00:00:01\n"
        "lxc.net.1.type = veth\nlxc.net.1.hwaddr = 02:00:00:00:00:01\n",
        3,
        "network 1: duplicate hwaddr '02:00:00:00:00:01' (also network 0)",
    ),
    (
        "dup-veth-pair",
        "lxc.net.0.type = veth\nlxc.net.0.veth.pair = vx\nlxc.net.1.type = veth\n"
        "lxc.net.1.veth.pair = vx\n",
        3,
        "network 1: duplicate veth.pair name 'vx' (also network 0)",
    ),
    (
        "init-cwd",
        "lxc.init.cwd = srv\n",
        1,
        "bad value for lxc.init.cwd: 'srv' is not an absolute path",
    ),
    (
        "init-cmd",
        'lxc.init.cmd = /bin/sh -c "x\n',
        1,
        "bad value for lxc.init.cmd: No closing quotation",
    ),
    (
        "env-key",
        "lxc.environment = 1X=2\n",
        1,
        "bad value for lxc.environment: '1X=2' is not KEY=VALUE with KEY a variable name",
    ),
    (
        "env-bare",
        "lxc.environment = PATH\n",
        1,
        "bad value for lxc.environment: 'PATH' is not KEY=VALUE with KEY a variable name",
    ),
    (
        "keep",
        "lxc.namespace.keep = net bogus\n",
        1,
        "bad value for lxc.namespace.keep: 'bogus' is not a namespace"
        " (cgroup, ipc, mnt, net, pid, time, user, uts)",
    ),
    (
        "mount-auto",
        "lxc.mount.auto = proc sys:bogus\n",
        1,
        "bad value for lxc.mount.auto: 'sys:bogus' is not an automatic mount (cgroup,"
        " cgroup-full, cgroup-full:mixed, cgroup-full:ro, cgroup-full:rw,"
        " cgroup:mixed, cgroup:ro, cgroup:rw, proc, proc:mixed, proc:rw, sys, sys:mixed,"
        " sys:ro, sys:rw)",
    ),
    (
        "signal-name",
        "lxc.signal.halt = SIGBOGUS\n",
        1,
        "bad value for lxc.signal.halt: 'SIGBOGUS' is not a signal name or a number 1-64",
    ),
    (
        "signal-zero",
        "lxc.signal.stop = 0\n",
        1,
        "bad value for lxc.signal.stop: '0' is not a signal number (1-64)",
    ),
    (
        "signal-65",
        "lxc.stopsignal = 65\n",
        1,
        "bad value for lxc.stopsignal: '65' is not a signal number (1-64)",
    ),
    (
        "signal-rt-too-far",
        "lxc.signal.halt = SIGRTMIN+40\n",
        1,
        "bad value for lxc.signal.halt: 'SIGRTMIN+40' is not a signal name or a number 1-64",
    ),
    (
        "tty",
        "lxc.tty.max = many\n",
        1,
        "bad value for lxc.tty.max: 'many' is not a number of ttys (0-64)",
    ),
    ("autodev", "lxc.autodev = 2\n", 1, "bad value for lxc.autodev: '2' is not 0 or 1"),
    (
        "entry-fields",
        "lxc.uts.name = a\nlxc.mount.entry = /bin bin none\n",
        2,
        "bad mount entry: expected 'source target fstype options [dump [pass]]',"
        " got '/bin bin none'",
    ),
    (
        "entry-dump",
        "lxc.mount.entry = /bin bin none ro,bind x 0\n",
        1,
        "bad mount entry: dump and pass must be integers, got 'x 0'",
    ),
    (
        "entry-option",
        "lxc.mount.entry = /bin bin none ro,,bind\n",
        1,
        "bad mount entry: empty option in 'ro,,bind'",
    ),
    (
        "entry-escape",
        "lxc.mount.entry = /bin usr/../../etc none ro,bind\n",
        1,
        "bad mount entry: target 'usr/../../etc' contains '..'",
    ),
    (
        "keep-mnt",
        "lxc.namespace.keep = net mnt\n",
        1,
        "bad value for lxc.namespace.keep: lxcflow always gives a container its own mnt namespace",
    ),
    (
        "keep-pid",
        "lxc.namespace.keep = pid\n",
        1,
        "bad value for lxc.namespace.keep: lxcflow always gives a container its own pid namespace",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [case[1:] for case in ERRORS],
    ids=[case[0] for case in ERRORS],
)
def test_config_errors_name_file_and_line(
    tmp_path: Path, text: str, line: int, reason: str
) -> None:
    expected = reason.replace("{dir}", str(tmp_path))
    assert config_error(tmp_path, text) == f"{tmp_path / 'config'}:{line}: {expected}"


def test_config_error_carries_structured_details(tmp_path: Path) -> None:
    path = write(tmp_path / "config", "lxc.uts.name = a\nlxc.foo = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.details == {"file": str(path), "line": 2, "reason": "unknown key 'lxc.foo'"}


def test_missing_config_has_no_line(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "config"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: cannot read config: No such file or directory"
    assert info.value.details["line"] is None


def test_config_that_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_bytes(b"lxc.uts.name = \xff\n")
    with pytest.raises(ConfigError, match=r"cannot read config: not UTF-8 text$"):
        load_config(path)


def test_missing_fstab_is_reported_at_the_config_line(tmp_path: Path) -> None:
    message = config_error(tmp_path, "lxc.uts.name = a\nlxc.mount = ./fstab\n")
    assert message == (
        f"{tmp_path / 'config'}:2: cannot read fstab {tmp_path / 'fstab'}:"
        " No such file or directory"
    )


def test_fstab_errors_name_the_fstab_and_its_line(tmp_path: Path) -> None:
    fstab = write(tmp_path / "etc" / "fstab", "# tools\n/bin bin none ro,bind 0 0\n/lib lib\n")
    message = config_error(tmp_path, "lxc.mount.fstab = etc/fstab\n")
    assert message == (
        f"{fstab}:3: bad mount entry: expected 'source target fstype options [dump [pass]]',"
        " got '/lib lib'"
    )


def test_parse_fstab(tmp_path: Path) -> None:
    fstab = write(tmp_path / "fstab", "\n# c\nproc proc proc nodev,noexec 0 0\n")
    assert parse_fstab(fstab) == (
        MountEntry("proc", "proc", "proc", ("nodev", "noexec"), str(fstab), 3),
    )


def test_parse_fstab_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse_fstab(tmp_path / "fstab")
    assert str(info.value) == f"{tmp_path / 'fstab'}: cannot read fstab: No such file or directory"


# ---------------------------------------------------------------- absolutize


def test_absolutize_rewrites_only_relative_path_values(tmp_path: Path) -> None:
    text = (
        "# lxc.rootfs = ./not-this\n"
        "lxc.utsname = ./not-a-path\n"
        "  lxc.rootfs =\t./rootfs  \r\n"
        "lxc.mount=fstab\n"
        "lxc.mount.fstab = /etc/abs\n"
        "lxc.rootfs.path = dir:../r\n"
        "lxc.rootfs.path = btrfs:./x\n"
        "lxc.hook.start = ./hooks/go 'a  b'\n"
        "lxc.hook.stop = logger stop\n"
        "lxc.mount.entry = ./src dst none bind 0 0\n"
        "lxc.include = common.conf\n"
        "lxc.include = conf.d/\n"
        "lxc.include = /usr/share/lxc/config/common.conf\n"
        "no equals here"
    )
    expected = (
        "# lxc.rootfs = ./not-this\n"
        "lxc.utsname = ./not-a-path\n"
        f"  lxc.rootfs =\t{tmp_path}/rootfs  \r\n"
        f"lxc.mount={tmp_path}/fstab\n"
        "lxc.mount.fstab = /etc/abs\n"
        f"lxc.rootfs.path = dir:{tmp_path.parent}/r\n"
        "lxc.rootfs.path = btrfs:./x\n"
        f"lxc.hook.start = {tmp_path}/hooks/go 'a  b'\n"
        "lxc.hook.stop = logger stop\n"
        "lxc.mount.entry = ./src dst none bind 0 0\n"
        f"lxc.include = {tmp_path}/common.conf\n"
        f"lxc.include = {tmp_path}/conf.d/\n"
        "lxc.include = /usr/share/lxc/config/common.conf\n"
        "no equals here"
    )

    result = absolutize(text, tmp_path)

    assert result == expected
    assert result.count("\n") == text.count("\n")


def test_absolutized_config_means_the_same_elsewhere(ssh_dir: Path, tmp_path: Path) -> None:
    original = load_config(write(ssh_dir / "config", SSH_OLD))
    copy = write(tmp_path / "lxcpath" / "ssh" / "config", absolutize(SSH_OLD, ssh_dir))

    assert load_config(copy) == dataclasses.replace(original, file=str(copy))
