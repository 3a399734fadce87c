"""The per-container metric families, written straight in Prometheus's text
format (version 0.0.4), one container at a time.

A scrape of 1,000 containers has some 13,000 of these samples.
prometheus_client's families and ``generate_latest`` spend about 6 us on
each (a Sample tuple, then every label name validated and escaped again):
some 75 ms a scrape here, more than the whole budget of 50. Here the labels are
escaped once a container and the lines are plain strings; the daemon-wide
families, a few dozen samples, stay with the library (see :mod:`metrics`).
"""

from __future__ import annotations

from lxcflow.daemon.container import Container
from lxcflow.daemon.views import figures
from lxcflow.states import State

#: name as served, type, help: the order they are served in
FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("container_cpu_usage_seconds_total", "counter", "Cumulative CPU time consumed, in seconds"),
    ("container_memory_usage_bytes", "gauge", "Memory charged to the container, in bytes"),
    ("container_memory_working_set_bytes", "gauge",
     "Memory in use, less inactive file pages (cAdvisor's working set), in bytes"),
    ("container_processes", "gauge", "Processes in the container"),
    ("container_network_receive_bytes_total", "counter", "Bytes the container received"),
    ("container_network_transmit_bytes_total", "counter", "Bytes the container sent"),
    ("lxcflow_container_state", "gauge",
     "1 for the container's current state, 0 for the others"),
    ("lxcflow_container_restarts_total", "counter",
     "Restarts, by a restart policy or a rule's action"),
    ("lxcflow_container_healthy", "gauge",
     "1 if its health rule found it healthy, else 0 (only containers a health rule probes)"),
    ("lxcflow_container_frozen_seconds_total", "counter",
     "Seconds spent FROZEN in this daemon's life"),
)

#: what follows a container's own label in each of its state lines
_STATE_SUFFIXES = tuple((state, f',state="{state.value}"}} ') for state in State)


def escape(value: str) -> str:
    """A label value as the text format quotes it."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class ContainerLines:
    """The lines of every per-container family, filled one container at a time."""

    def __init__(self) -> None:
        self._lines: dict[str, list[str]] = {name: [] for name, _, _ in FAMILIES}

    def add(self, c: Container) -> None:
        """The container's samples, read now."""
        out = self._lines
        name = escape(c.name)
        label = f'{{name="{name}"}} '
        states = out["lxcflow_container_state"]
        head = f'lxcflow_container_state{{name="{name}"'
        for state, suffix in _STATE_SUFFIXES:
            states.append(f"{head}{suffix}{1 if c.state is state else 0}\n")
        out["lxcflow_container_restarts_total"].append(
            f"lxcflow_container_restarts_total{label}{c.restarts}\n")
        out["lxcflow_container_frozen_seconds_total"].append(
            f"lxcflow_container_frozen_seconds_total{label}{c.frozen_seconds()!r}\n")
        if c.health is not None:
            out["lxcflow_container_healthy"].append(
                f"lxcflow_container_healthy{label}{int(c.health.status == 'healthy')}\n")
        found = figures(c)
        if found is None:
            return
        out["container_cpu_usage_seconds_total"].append(
            f"container_cpu_usage_seconds_total{label}{found.cpu_ns / 1e9!r}\n")
        if found.memory_bytes is not None:
            out["container_memory_usage_bytes"].append(
                f"container_memory_usage_bytes{label}{found.memory_bytes}\n")
        if found.working_set_bytes is not None:
            out["container_memory_working_set_bytes"].append(
                f"container_memory_working_set_bytes{label}{found.working_set_bytes}\n")
        out["container_processes"].append(f"container_processes{label}{found.processes}\n")
        for interface, received, sent in found.interfaces:
            pair = f'{{name="{name}",interface="{escape(interface)}"}} '
            out["container_network_receive_bytes_total"].append(
                f"container_network_receive_bytes_total{pair}{received}\n")
            out["container_network_transmit_bytes_total"].append(
                f"container_network_transmit_bytes_total{pair}{sent}\n")

    def text(self) -> str:
        """Every family with its HELP and TYPE, the empty ones too (as the
        library writes them)."""
        parts: list[str] = []
        for name, kind, help_text in FAMILIES:
            parts.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
            parts.extend(self._lines[name])
        return "".join(parts)
