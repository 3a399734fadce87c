"""lxcflow: Linux containers on today's kernels, with an event-driven supervisor.

This package's top level stays import-light: the `lxcflow` command imports it
on every call and must not pay for trio or pyroute2.
"""

__version__ = "0.1.0"
