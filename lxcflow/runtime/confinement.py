"""What a container's processes may do, decided once per start from its
config and applied alike to its init and to every attach (shim/confine.c
reads the records): the capabilities kept, the AppArmor profile, the seccomp
program, no_new_privs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trio

from lxcflow.config import ContainerConfig
from lxcflow.runtime import apparmor, seccomp
from lxcflow.runtime.capabilities import kept_mask


@dataclass(frozen=True, slots=True)
class Confinement:
    caps_kept: int  # the bounding set's mask
    seccomp_filter: Path  # the compiled program
    no_new_privs: bool
    apparmor: apparmor.Decision

    def records(self) -> list[tuple[str, str]]:
        """The records the keeper's and attach's specs carry."""
        out = [("capkeep", f"{self.caps_kept:x}"), ("seccomp", str(self.seccomp_filter))]
        if self.no_new_privs:
            out.append(("nonewprivs", "1"))
        if self.apparmor.profile is not None:
            out.append(("apparmor", self.apparmor.profile))
        return out


async def confinement_for(config: ContainerConfig, shim_binary: Path,
                          seccomp_cache: Path) -> Confinement:
    """The confinement ``config`` asks for on this host.

    Raises:
        ConfigError: its seccomp profile does not read or compile.
        StartFailed: the AppArmor profile it needs is not loaded.
    """
    # compiled once per profile: after that a stat or two, no worker thread
    program = seccomp.known(config.seccomp_profile, seccomp_cache)
    if program is None:
        program = await trio.to_thread.run_sync(seccomp.compiled, shim_binary,
                                                config.seccomp_profile, seccomp_cache)
    return Confinement(kept_mask(config), program, config.no_new_privs,
                       apparmor.decide_for(config))
