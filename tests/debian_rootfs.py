"""A Debian root file system for the tests: debootstrap from Debian's packages,
built once and cached outside the repository.

Run as a script (``make test`` does, as root) it builds the cache if it is
missing and prints its path; the integration tests call :func:`build` too,
so a bare ``pytest`` gets the same tree. An interrupted build leaves only a
``.tmp-PID`` directory beside the cache, which the next build removes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

SUITE = "bookworm"
VARIANT = "minbase"
#: systemd as the init, dbus for systemctl to talk to it
PACKAGES = ("systemd", "systemd-sysv", "dbus")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
CACHE = Path(os.environ.get("LXCFLOW_TEST_CACHE", "/var/cache/lxcflow-tests"))


def mirror() -> str:
    """The host's own Debian mirror (its apt sources), else deb.debian.org."""
    sources = [*Path("/etc/apt/sources.list.d").glob("*.sources"), Path("/etc/apt/sources.list")]
    for source in sources:
        try:
            text = source.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            if words[:1] == ["URIs:"]:  # deb822
                uris = words[1:]
            elif words[:1] == ["deb"]:  # one-line: deb [options] URI suite ...
                uris = [w for w in words[1:] if not w.startswith("[")][:1]
            else:
                continue
            for uri in uris:
                if uri.rstrip("/").endswith("/debian"):
                    return uri
    return DEFAULT_MIRROR


def cache_dir() -> Path:
    """Where this package set's tree is cached (the key changes with it)."""
    key = hashlib.sha256(json.dumps([SUITE, VARIANT, PACKAGES]).encode()).hexdigest()[:12]
    return CACHE / f"debian-{SUITE}-{VARIANT}-{key}"


def build() -> Path:
    """The cached root file system, built first if it is not there yet.

    Raises:
        RuntimeError: debootstrap is missing or failed (with its last lines).
    """
    done = cache_dir()
    rootfs = done / "rootfs"
    if (done / "complete").is_file():
        return rootfs
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed (make test installs it)")
    done.parent.mkdir(parents=True, exist_ok=True)
    for leftover in done.parent.glob(f"{done.name}.tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    work = done.with_name(f"{done.name}.tmp-{os.getpid()}")
    argv = ["debootstrap", f"--variant={VARIANT}", f"--include={','.join(PACKAGES)}",
            SUITE, str(work / "rootfs"), mirror()]
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-5:])
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}):\n{tail}")
    (work / "complete").write_text(" ".join(argv) + "\n")
    shutil.rmtree(done, ignore_errors=True)  # an incomplete one from an older layout
    os.rename(work, done)
    return rootfs


if __name__ == "__main__":
    try:
        print(build())
    except RuntimeError as e:
        sys.exit(f"debian_rootfs: {e}")
