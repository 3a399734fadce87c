"""``lxc.apparmor.*``: which AppArmor profile a container's init runs under,
decided as LXC decides it.

On a kernel without AppArmor the keys are accepted and have no effect, as in
LXC (``info`` says so). Where it is enabled: ``unconfined`` runs unconfined,
a loaded profile's name runs under it, and ``generated`` (or no key) under
LXC's own default profile when it is loaded; when it is not, the start is
refused unless ``lxc.apparmor.allow_incomplete = 1``, which runs without one,
loudly.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from lxcflow.config import ContainerConfig
from lxcflow.errors import StartFailed

#: what LXC generates from and loads as its default for containers
LXC_DEFAULT_PROFILES = ("lxc-container-default-cgns", "lxc-container-default")
SECURITYFS = Path("/sys/kernel/security/apparmor")


class Outcome(enum.Enum):
    NOT_ENABLED = "not enabled on this kernel"
    UNCONFINED = "unconfined"
    PROFILE = "profile"
    INCOMPLETE = "without a profile (lxc.apparmor.allow_incomplete)"


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    profile: str | None = None  # the profile the init execs into

    def describe(self, asked: str | None) -> str:
        """What ``info`` shows."""
        if self.outcome is Outcome.NOT_ENABLED:
            return f"not enabled on this kernel ({_asked(asked)} has no effect)"
        if self.outcome is Outcome.PROFILE:
            return f"profile {self.profile}"
        return self.outcome.value


def _asked(asked: str | None) -> str:
    return f"lxc.apparmor.profile = {asked}" if asked else "the default profile"


def decide(asked: str | None, allow_incomplete: bool, *, enabled: bool,
           loaded: Collection[str]) -> Decision:
    """The profile for a config asking for ``asked`` (None: no key, which
    means ``generated`` as in LXC).

    Raises:
        StartFailed: the profile is not loaded, or generated is asked for
            and LXC's default is not loaded and incomplete is not allowed.
    """
    if not enabled:
        return Decision(Outcome.NOT_ENABLED)
    wanted = asked or "generated"
    if wanted == "unconfined":
        return Decision(Outcome.UNCONFINED)
    if wanted == "generated":
        for name in LXC_DEFAULT_PROFILES:
            if name in loaded:
                return Decision(Outcome.PROFILE, name)
        if allow_incomplete:
            return Decision(Outcome.INCOMPLETE)
        raise StartFailed("lxc.apparmor.profile = generated needs LXC's default AppArmor "
                          f"profile ({LXC_DEFAULT_PROFILES[0]}), which is not loaded; load it "
                          "or set lxc.apparmor.allow_incomplete = 1")
    if wanted not in loaded:
        raise StartFailed(f"AppArmor profile {wanted!r} is not loaded")
    return Decision(Outcome.PROFILE, wanted)


def decide_for(config: ContainerConfig) -> Decision:
    """:func:`decide` for ``config`` on this host, as it is now.

    Raises:
        StartFailed: as :func:`decide`.
    """
    enabled, loaded = host_state()
    return decide(config.apparmor_profile, config.apparmor_allow_incomplete,
                  enabled=enabled, loaded=loaded)


def host_state(securityfs: Path = SECURITYFS) -> tuple[bool, frozenset[str]]:
    """Whether AppArmor is enabled here, and the names of the loaded profiles."""
    try:
        lines = (securityfs / "profiles").read_text().splitlines()
    except OSError:
        return False, frozenset()
    # "name (mode)" per line
    return True, frozenset(line.rsplit(" (", 1)[0] for line in lines if line)
