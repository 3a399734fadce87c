"""``lxcflow checkconfig``: what this kernel gives lxcflow, as lxc-checkconfig.

Standard library only; reads /proc and the cgroup tree, changes nothing.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

from lxcflow.cgroups import Layout, detect_layout
from lxcflow.errors import LxcflowError
from lxcflow.runtime.shim import binary_path

NAMESPACES = {"pid": "PID", "mnt": "Mount", "uts": "UTS", "ipc": "IPC", "net": "Network",
              "cgroup": "Cgroup", "user": "User"}
REQUIRED_NAMESPACES = ("pid", "mnt", "uts", "ipc")


def _kernel_at_least(major: int, minor: int) -> bool:
    parts = platform.release().split(".")
    try:
        return (int(parts[0]), int(parts[1].split("-")[0])) >= (major, minor)
    except (ValueError, IndexError):
        return False


def _pidfd() -> bool:
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (OSError, AttributeError):
        return False
    return True


def _seccomp_filters() -> bool:
    try:
        # the file comes with CONFIG_SECCOMP_FILTER; lxcflow's programs use errno and kill
        actions = Path("/proc/sys/kernel/seccomp/actions_avail").read_text().split()
        return {"errno", "kill_process"} <= set(actions)
    except OSError:
        return False


def _user_namespaces() -> bool:
    try:
        return int(Path("/proc/sys/user/max_user_namespaces").read_text()) > 0
    except (OSError, ValueError):
        return False


def checks(root: Path = Path("/sys/fs/cgroup")) -> list[tuple[str, str, bool, bool]]:
    """(section, feature, present, required) for every check."""
    out = []
    for ns, label in NAMESPACES.items():
        present = Path(f"/proc/self/ns/{ns}").exists()
        out.append(("Namespaces", f"{label} namespace", present, ns in REQUIRED_NAMESPACES))
    try:
        layout: Layout | None = detect_layout(root)
    except LxcflowError:
        layout = None
    out.append(("Cgroups", f"layout: {layout.value if layout else 'none'}", layout is not None,
                True))
    v2 = layout in (Layout.UNIFIED, Layout.HYBRID)
    v1_freezer = (root / "freezer").is_dir()
    out.append(("Cgroups", "freezer (cgroup.freeze, v2)", v2 and _kernel_at_least(5, 2), False))
    out.append(("Cgroups", "freezer (freezer.state, v1)", v1_freezer, False))
    out.append(("Cgroups", "any freezer", (v2 and _kernel_at_least(5, 2)) or v1_freezer, True))
    out.append(("Cgroups", "cgroup.kill", v2 and _kernel_at_least(5, 14), False))
    # cgroup.procs takes the kernel's global threadgroup lock, whose first
    # use after a quiet spell waits for an RCU grace period (shim/cgroups.c)
    out.append(("Cgroups", "clone3 into a cgroup (a start skips the global cgroup lock)",
                v2 and _kernel_at_least(5, 7), False))
    out.append(("Processes", "pidfd (pidfd_open)", _pidfd(), True))
    out.append(("Processes", "exit status on a pidfd (how an adopted run ended, at once)",
                _kernel_at_least(6, 15), False))
    out.append(("Processes", f"lxcflow-shim built ({binary_path()})", binary_path().exists(),
                False))
    # every container runs under a seccomp filter (runtime/seccomp.py)
    out.append(("Confinement", "seccomp filters", _seccomp_filters(), True))
    out.append(("Confinement", "devices controller (v1, what lxcflow writes device rules to)",
                (root / "devices" / "devices.allow").exists(), False))
    out.append(("Confinement", "cgroup device programs (BPF, where cgroup2 is alone)",
                v2 and _kernel_at_least(4, 15), False))
    out.append(("Confinement", "user namespaces (lxc.idmap: unprivileged containers)",
                _user_namespaces(), False))
    out.append(("Confinement", "idmapped mounts (an unprivileged container's rootfs as on disk)",
                _kernel_at_least(5, 12), False))
    out.append(("Confinement", "AppArmor (lxc.apparmor.* take effect)",
                Path("/sys/kernel/security/apparmor/profiles").exists(), False))
    return out


def fleet(url: str | None) -> str:
    """The NATS a daemon would publish to (``--nats`` or LXCFLOW_NATS): whether
    it answers now, with JetStream. Never required: without it a daemon
    works as a single host."""
    if not url:
        return "NATS: not configured (--nats or LXCFLOW_NATS): a single host"
    import trio

    from lxcflow.nats.connection import NatsError, NatsRefused, connect
    from lxcflow.nats.jetstream import JetStream
    from lxcflow.nats.servers import parse_servers

    try:
        servers = parse_servers(url)
    except ValueError as e:
        return f"NATS: {e}"

    async def ask() -> str:
        async with connect(servers) as conn:
            account = await JetStream(conn, timeout=2.0).api("INFO")
            streams = account.get("streams", 0)
            return (f"NATS {conn.server}: reachable (nats-server {conn.info.get('version')}), "
                    f"JetStream on ({streams} streams)")

    try:
        return trio.run(ask)
    except NatsRefused as e:  # it answers: the daemon's own credentials may do
        return f"NATS {','.join(map(str, servers))}: answers, but {e}"
    except NatsError as e:
        return (f"NATS {','.join(map(str, servers))}: unreachable ({e}): a daemon works as a "
                "single host until it answers")


def run(nats: str | None = None) -> int:
    """Print the report; exit 1 if something required is missing."""
    section = None
    missing = 0
    print(f"Kernel: {platform.release()}")
    for sec, feature, present, required in checks():
        if sec != section:
            print(f"--- {sec} ---")
            section = sec
        status = "enabled" if present else ("missing" if required else "not available")
        print(f"{feature}: {status}")
        missing += required and not present
    print("--- Fleet ---")
    print(fleet(nats or os.environ.get("LXCFLOW_NATS")))
    if missing:
        print(f"{missing} required feature(s) missing")
    return 1 if missing else 0
