"""Container cgroups on unified (v2), hybrid and legacy (v1) hosts.

:func:`open_manager` detects the layout and returns a :class:`CgroupManager`;
it creates and opens :class:`ContainerCgroup` objects, which take attribute
names in either v1 or v2 spelling (see :mod:`lxcflow.cgroups.names`).
"""

from lxcflow.cgroups.base import CgroupEvents, ContainerCgroup, FreezerState
from lxcflow.cgroups.hybrid import HybridCgroup
from lxcflow.cgroups.layout import V1_CONTROLLERS, Layout, detect_layout
from lxcflow.cgroups.manager import CgroupManager, open_manager
from lxcflow.cgroups.names import shares_to_weight, weight_to_shares
from lxcflow.cgroups.v1 import V1Cgroup
from lxcflow.cgroups.v2 import V2Cgroup

__all__ = [
    "V1_CONTROLLERS",
    "CgroupEvents",
    "CgroupManager",
    "ContainerCgroup",
    "FreezerState",
    "HybridCgroup",
    "Layout",
    "V1Cgroup",
    "V2Cgroup",
    "detect_layout",
    "open_manager",
    "shares_to_weight",
    "weight_to_shares",
]
