"""A Debian root file system for the tests and benchmarks, made by lxcflow's
own debian template (debootstrap from Debian's packages, systemd as init),
whose cache of built trees lives outside the repository.

Run as a script (``make test`` does, as root) it builds the cache if it is
missing; :func:`make` copies a tree from it (the template's second create).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

SUITE = "bookworm"
TEMPLATE = Path(__file__).resolve().parents[1] / "lxcflow" / "templates" / "debian"
CACHE = Path(os.environ.get("LXCFLOW_TEST_CACHE", "/var/cache/lxcflow-tests"))
#: where the template keeps its trees for the tests (LXCFLOW_TEMPLATE_CACHE)
TEMPLATE_CACHE = CACHE / "template-debian"


def make(rootfs: Path, name: str = "deb") -> None:
    """Fill ``rootfs`` (a path that does not exist yet) with the tree.

    Raises:
        RuntimeError: the template failed (debootstrap missing, say), with its words.
    """
    with tempfile.TemporaryDirectory(prefix="lxcflow-deb-path-") as path:
        done = subprocess.run(
            [str(TEMPLATE), "--path", path, "--name", name, "--rootfs", str(rootfs),
             "--release", SUITE],
            env={**os.environ, "LXCFLOW_TEMPLATE_CACHE": str(TEMPLATE_CACHE)},
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
        )
    if done.returncode != 0:
        raise RuntimeError(f"the debian template failed ({done.returncode}): "
                           f"{done.stderr.strip()}")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="lxcflow-deb-") as scratch:
        try:
            make(Path(scratch) / "rootfs")  # builds the cache the first time
        except RuntimeError as e:
            sys.exit(f"debian_rootfs: {e}")
