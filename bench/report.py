"""The suite's figures: what one operation measured, printed, and written out.

One :class:`Operation` per thing timed, holding a :class:`Series` of
samples per way of doing it (lxcflow through the socket, lxcflow's CLI,
LXC, or a kernel floor), scalar figures where a distribution makes no
sense (memory, CPU share), and the targets as :class:`Check`\\ s. The same
objects are printed as the run goes, and written as JSON, as a Markdown
table and as a PNG chart at the end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import summary, summary_line

LXCFLOW, LXC, FLOOR = "lxcflow", "LXC", "floor"


@dataclass
class Series:
    """The samples (seconds) of one way of doing an operation."""

    label: str
    side: str  # LXCFLOW, LXC or FLOOR
    samples_s: list[float] = field(default_factory=list)

    def stats(self) -> dict[str, float]:
        """n, and the median, p90 and p99 in ms."""
        return summary(self.samples_s)


@dataclass
class Scalar:
    """One figure that is not a latency distribution."""

    label: str
    side: str
    value: float
    unit: str


@dataclass
class Check:
    """A target: ``value <= limit``. Printed, never asserted."""

    text: str
    value: float
    limit: float
    unit: str

    @property
    def met(self) -> bool:
        return self.value <= self.limit


@dataclass
class Operation:
    """One operation: its series, scalars, ratios to LXC and targets."""

    key: str
    title: str
    series: list[Series] = field(default_factory=list)
    scalars: list[Scalar] = field(default_factory=list)
    #: (our series' label, the label of the series it is compared with)
    pairs: list[tuple[str, str]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    note: str = ""

    def add(self, label: str, side: str) -> Series:
        s = Series(label, side)
        self.series.append(s)
        return s

    def get(self, label: str) -> Series:
        return next(s for s in self.series if s.label == label)

    def median_ratio(self, ours: str, theirs: str) -> float | None:
        a, b = self.get(ours).stats(), self.get(theirs).stats()
        if not a["n"] or not b["n"]:
            return None
        return a["median_ms"] / b["median_ms"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "title": self.title, "note": self.note,
            "series": [{"label": s.label, "side": s.side, **s.stats(),
                        "samples_ms": [round(x * 1e3, 4) for x in s.samples_s]}
                       for s in self.series],
            "scalars": [vars(x) for x in self.scalars],
            "ratios": [{"ours": a, "theirs": b, "median_ratio": self.median_ratio(a, b)}
                       for a, b in self.pairs],
            "checks": [{**vars(c), "met": c.met} for c in self.checks],
        }


def print_operation(op: Operation) -> None:
    """The operation's figures on stdout, as soon as it is measured."""
    print(f"\n== {op.title}")
    for s in op.series:
        st = s.stats()
        if st["n"]:
            print(f"  {summary_line(s.label, st)}")
    for x in op.scalars:
        print(f"  {x.label:<46} {x.value:10.2f} {x.unit}")
    for a, b in op.pairs:
        r = op.median_ratio(a, b)
        if r is not None:
            print(f"  ratio {a} / {b}: {r:.3f}")
    for c in op.checks:
        print(f"  target: {c.text} <= {c.limit:g} {c.unit}: measured {c.value:.3f} {c.unit}"
              f" -> {'met' if c.met else 'MISSED'}")
    if op.note:
        print(f"  note: {op.note}")


def write_json(path: Path, meta: dict[str, Any], ops: list[Operation]) -> None:
    path.write_text(json.dumps({"meta": meta, "operations": [op.to_dict() for op in ops]},
                               indent=1) + "\n")


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def write_markdown(path: Path, meta: dict[str, Any], ops: list[Operation]) -> None:
    """One table of latencies (with the ratio to LXC), one of the other
    figures, and the targets with what was measured."""
    lines = ["# lxcflow beside LXC", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items()]
    lines += ["", "## Latencies (ms)", "",
              "| operation | how | n | median | p90 | p99 | lxcflow/LXC (median) |",
              "|---|---|---|---|---|---|---|"]
    for op in ops:
        ratios = {a: (b, op.median_ratio(a, b)) for a, b in op.pairs}
        for s in op.series:
            st = s.stats()
            if not st["n"]:
                continue
            b, r = ratios.get(s.label, ("", None))
            ratio = f"{r:.3f} (vs {b})" if r is not None else ""
            lines.append(f"| {op.title} | {s.label} | {st['n']} | {_fmt(st['median_ms'])} | "
                         f"{_fmt(st['p90_ms'])} | {_fmt(st['p99_ms'])} | {ratio} |")
    scalars = [(op, x) for op in ops for x in op.scalars]
    if scalars:
        lines += ["", "## Other figures", "", "| operation | what | value |", "|---|---|---|"]
        lines += [f"| {op.title} | {x.label} | {x.value:.2f} {x.unit} |" for op, x in scalars]
    lines += ["", "## Targets", "", "| operation | target | measured | |", "|---|---|---|---|"]
    for op in ops:
        for c in op.checks:
            lines.append(f"| {op.title} | {c.text} <= {c.limit:g} {c.unit} | "
                         f"{c.value:.3f} {c.unit} | {'met' if c.met else '**missed**'} |")
    notes = [(op.title, op.note) for op in ops if op.note]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {t}: {n}" for t, n in notes]
    path.write_text("\n".join(lines) + "\n")


COLOURS = {LXCFLOW: "#1f77b4", LXC: "#d62728", FLOOR: "#7f7f7f"}


def write_chart(path: Path, ops: list[Operation]) -> None:
    """Latency distributions per operation, lxcflow beside LXC, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no screen here
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    shown = [op for op in ops if any(s.samples_s for s in op.series)]
    if not shown:
        return  # figures only (a memory run, say): no distribution to draw
    cols = 2
    rows = (len(shown) + cols - 1) // cols
    # Each row as tall as its longest list of series: 16 freeze rows need room.
    heights = [max(3, *(sum(1 for s in op.series if s.samples_s)
                        for op in shown[r * cols:(r + 1) * cols])) for r in range(rows)]
    fig, axes = plt.subplots(rows, cols, figsize=(14, 0.45 * sum(heights) + 1.3 * rows),
                             squeeze=False, gridspec_kw={"height_ratios": heights})
    for ax, op in zip(axes.flat, shown, strict=False):
        series = [s for s in op.series if s.samples_s]
        data = [[x * 1e3 for x in s.samples_s] for s in series]
        parts = ax.boxplot(data, vert=False, patch_artist=True, whis=(1, 99),
                           showfliers=False, widths=0.6)
        for patch, s in zip(parts["boxes"], series, strict=True):
            patch.set_facecolor(COLOURS[s.side])
            patch.set_alpha(0.55)
        ax.set_yticks(range(1, len(series) + 1), [s.label for s in series], fontsize=8)
        ax.set_xscale("log")
        # Ticks at 1-2-5 steps: many a plot spans less than a decade.
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("ms (log scale; box: p25-p75, line: median, whiskers: p1-p99)",
                      fontsize=7)
        ax.set_title(op.title, fontsize=9)
        ax.grid(axis="x", which="both", alpha=0.3)
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.55) for c in COLOURS.values()]
    fig.legend(handles, list(COLOURS), loc="upper center", ncols=3)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / sum(heights)))
    fig.savefig(path, dpi=110)
    plt.close(fig)
