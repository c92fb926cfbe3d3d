"""Plotting functions of the report, reusable from notebooks.

Like rliable's `plot_utils`, each function draws on the `ax` it is given and returns nothing (or
only the notes it had to make about data it could not draw); the caller owns the figure. Data come
as plain `Series` (one contender's mean and 95% CI per knob value), so a notebook can plot its own
numbers as well as a stored verdict's cells.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullLocator

# Okabe & Ito (2008): distinguishable with every common form of colour-blindness
OKABE_ITO = ("#D55E00", "#0072B2", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", ":", "-.")
REFERENCE_COLOR = "#000000"
BREAKING_COLOR = "#8a8a8a"  # grey: never a contender's colour
# each role its own colours, line style and markers, so deep, alternative and remedy never look alike
ROLE_STYLE = {
    "deep": (("#D55E00", "#CC79A7", "#7a2e00"), "-", ("o", "v", "X")),
    "alternative": (("#0072B2", "#56B4E9", "#00365c", "#5a8fb0"), "--", ("s", "D", "P", "*")),
    "remedy": (("#009E73", "#E69F00", "#00573f"), "-.", ("^", "h", "<")),
    "challenger": (("#000000", "#555555"), ":", ("*", "p")),
}
FLOOR_RATIO = 1e-12  # on a log axis, values this far below the largest are drawn at a labelled floor


@dataclass(frozen=True)
class Series:
    """One line: a label, and per knob value the mean and the 95% CI (lo, hi)."""

    label: str
    knobs: tuple[Any, ...]
    mean: tuple[float, ...]
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    color: str = OKABE_ITO[0]
    marker: str = "o"
    linestyle: str = "-"


class KnobAxis:
    """Maps knob values to x positions: the values themselves when all are numbers, else 0..n-1
    with the values as tick labels (categorical knobs: strings, tuples, mixed types)."""

    def __init__(self, values: Sequence[Any], log: bool = False) -> None:
        self.values = list(values)
        self.numeric = all(_is_number(v) for v in self.values)
        positive = [float(v) for v in self.values if self.numeric and float(v) > 0]
        self.log = log and self.numeric and len(positive) == len(self.values)
        # a knob that includes 0 and spans decades (0, 1, 3, 10, 100): symmetric log, 0 kept visible
        self.symlog = (self.numeric and not self.log and len(positive) >= 2 and len(positive) < len(self.values)
                       and max(positive) / min(positive) >= 30 and all(float(v) >= 0 for v in self.values))
        self.linthresh = min(positive) if self.symlog else 1.0
        self._index = {_key(v): i for i, v in enumerate(self.values)}

    def x(self, value: Any) -> float | None:
        """The x position of a knob value; None for a categorical value not on the axis."""
        if self.numeric:
            return float(value) if _is_number(value) else None
        i = self._index.get(_key(value))
        return None if i is None else float(i)

    def apply(self, ax: Any, label: str) -> None:
        ax.set_xlabel(label)
        if self.log:
            ax.set_xscale("log")
            plain_log_labels(ax.xaxis)
        elif self.symlog:
            ax.set_xscale("symlog", linthresh=self.linthresh, linscale=0.6)
        if not self.numeric:
            ax.set_xticks(range(len(self.values)))
            ax.set_xticklabels([_short(v) for v in self.values], rotation=30 if len(self.values) > 4 else 0,
                               ha="right" if len(self.values) > 4 else "center")
            ax.set_xlim(-0.5, len(self.values) - 0.5)
        elif len(self.values) <= 12:
            ax.xaxis.set_major_locator(FixedLocator([float(v) for v in self.values]))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: fmt_number(x)))
            ax.xaxis.set_minor_locator(NullLocator())
        if len(self.values) == 1 and self.numeric:  # one value: a point in the middle, not an edge
            x = float(self.values[0])
            ax.set_xlim(x / 2, x * 2) if self.log else ax.set_xlim(x - 1, x + 1)


def fmt_number(x: float) -> str:
    """One label format everywhere: plain below 1e4 and above 1e-3, else 1e±k."""
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e4:
        return f"{x:g}"
    mantissa, exp = f"{x:.0e}".split("e")
    return f"{mantissa}e{int(exp)}" if mantissa not in ("1", "-1") else f"{'-' if x < 0 else ''}1e{int(exp)}"


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _key(v: Any) -> str:
    return repr(tuple(v) if isinstance(v, list) else v)


def _short(v: Any, width: int = 14) -> str:
    text = ", ".join(map(str, v)) if isinstance(v, tuple | list) else str(v)
    return text if len(text) <= width else text[: width - 1] + "…"


def plot_series(ax: Any, series: Sequence[Series], axis: KnobAxis, log_y: bool = False) -> list[str]:
    """Mean line with a 95% CI band per series (a point with an error bar where the knob has one
    value). On a log y axis, means <= 0 are dropped, and values far below the largest (machine
    precision) are drawn at a labelled floor; the returned notes say where."""
    notes: list[str] = []
    floor = None
    if log_y:
        top = max((m for s in series for m in s.mean if math.isfinite(m) and m > 0), default=None)
        low = min((m for s in series for m in s.mean if math.isfinite(m) and m > 0), default=None)
        if top is not None and low is not None and low < top * FLOOR_RATIO:
            floor = top * FLOOR_RATIO
            ax.axhline(floor, color="#777777", linestyle=(0, (1, 3)), linewidth=1.0,
                       label=f"floor {fmt_number(floor)} (smaller values drawn here)")
    single = len(axis.values) == 1
    for i, s in enumerate(series):
        pts = [(axis.x(k), m, lo, hi) for k, m, lo, hi in zip(s.knobs, s.mean, s.lo, s.hi, strict=True)]
        pts = [p for p in pts if p[0] is not None and math.isfinite(p[1])]
        if log_y:
            dropped = [k for k, m in zip(s.knobs, s.mean, strict=True) if math.isfinite(m) and m <= 0]
            if dropped:
                notes.append(f"{s.label}: mean ≤ 0 at {_list(dropped)} not drawn (log axis)")
            clipped = [k for k, m, lo in zip(s.knobs, s.mean, s.lo, strict=True)
                       if math.isfinite(m) and m > 0 and lo <= 0]
            if clipped:
                notes.append(f"{s.label}: CI reaches ≤ 0 at {_list(clipped)} (band clipped)")
            if floor is not None:
                under = [k for k, m in zip(s.knobs, s.mean, strict=True) if math.isfinite(m) and 0 < m < floor]
                if under:
                    notes.append(f"{s.label}: below the floor {fmt_number(floor)} at {_list(under)}")
                pts = [(x, max(m, floor), max(lo, floor), max(hi, floor)) for x, m, lo, hi in pts if m > 0]
            pts = [p for p in pts if p[1] > 0]
        if not pts:
            continue
        xs, ms, los, his = (list(t) for t in zip(*pts, strict=True))
        if not axis.numeric:  # dodge: identical categorical series stay visible side by side
            xs = [x + (i - (len(series) - 1) / 2) * 0.06 for x in xs]
        if log_y:
            bottom = floor or min(m for m in ms) / 1e3
            los = [lo if lo > 0 else bottom for lo in los]
        if single or not axis.numeric and len(axis.values) <= 2:
            err = [[m - lo for m, lo in zip(ms, los)], [hi - m for m, hi in zip(ms, his)]]
            ax.errorbar(xs, ms, yerr=err, color=s.color, marker=s.marker, linestyle="none", capsize=4,
                        markersize=6, label=s.label)
            continue
        ax.fill_between(xs, los, his, color=s.color, alpha=0.15, linewidth=0)
        ax.plot(xs, ms, color=s.color, marker=s.marker, linestyle=s.linestyle, label=s.label,
                markersize=5 if i < 3 else 4, linewidth=1.6, markerfacecolor="white" if i % 2 else s.color)
    if log_y:
        ax.set_yscale("log")
        plain_log_labels(ax.yaxis)
    return notes


def plain_log_labels(axis: Any) -> None:
    """Log-axis ticks at every decade (every 2nd or 3rd over a wide span; 1-2-5 within one decade),
    labelled as plain text ('0.001', '1e-12') so they need no mathtext."""
    axis.set_major_locator(_DecadeLocator())
    axis.set_major_formatter(FuncFormatter(lambda x, _: fmt_number(x)))
    axis.set_minor_locator(NullLocator())


class _DecadeLocator(LogLocator):
    def tick_values(self, vmin: float, vmax: float) -> Any:
        import numpy as np

        vmin, vmax = sorted((max(vmin, 1e-300), max(vmax, 1e-300)))
        lo, hi = math.floor(math.log10(vmin)), math.ceil(math.log10(vmax))
        if hi - lo <= 1:  # within one decade: 1, 2, 5
            return np.array([m * 10.0**e for e in range(lo, hi + 1) for m in (1, 2, 5)])
        step = max(1, math.ceil((hi - lo) / 8))
        return np.array([10.0**e for e in range(lo, hi + 1, step)])


def _list(values: Sequence[Any]) -> str:
    return ", ".join(_short(v) for v in values)


def plot_lines(ax: Any, chance: float | None = None, success: float | None = None,
               breaking: Any = None, axis: KnobAxis | None = None, success_label: str = "success threshold"
               ) -> None:
    """The reference lines: chance level, success threshold (or factor/margin) and breaking point."""
    if chance is not None:
        ax.axhline(chance, color="#777777", linestyle=":", linewidth=1.2, label=f"chance ({chance:g})")
    if success is not None:
        ax.axhline(success, color="#000000", linestyle="--", linewidth=1.0, label=f"{success_label} ({success:g})")
    if breaking is not None and axis is not None:
        x = axis.x(breaking)
        if x is not None:
            ax.axvline(x, color=BREAKING_COLOR, linestyle="-", linewidth=7, alpha=0.25,
                       label=f"breaking point ({_short(breaking)})")


def plot_reference(ax: Any, points: Sequence[tuple[Any, float]], axis: KnobAxis, label: str,
                   log_y: bool = False, marker: str = "D") -> list[str]:
    """A published figure's (knob, value) points as hollow black markers; returns notes on points
    that could not be placed (knob value off a categorical axis, value <= 0 on a log axis)."""
    xs, ys, missed = [], [], []
    for knob, value in points:
        x = axis.x(knob)
        if x is None or not math.isfinite(value) or (log_y and value <= 0):
            missed.append(knob)
            continue
        xs.append(x)
        ys.append(value)
    if xs:
        ax.plot(xs, ys, linestyle="none", marker=marker, markersize=8, markerfacecolor="none",
                markeredgecolor=REFERENCE_COLOR, markeredgewidth=1.4, label=label)
    return [f"{label}: point(s) at {_list(missed)} not drawn"] if missed else []


def plot_comparison(ax: Any, knobs: Sequence[Any], cis: Sequence[tuple[float, float, float]], axis: KnobAxis,
                    limit: float, limit_label: str, log_y: bool = False, breaking: Any = None,
                    color: str = OKABE_ITO[0]) -> None:
    """Ratio or gap per knob value with its paired 95% CI, against the factor/margin line."""
    pts = [(axis.x(k), ci) for k, ci in zip(knobs, cis, strict=True)]
    pts = [(x, ci) for x, ci in pts if x is not None and all(math.isfinite(v) for v in ci)]
    if log_y:
        pts = [(x, ci) for x, ci in pts if ci[1] > 0]
        ax.set_yscale("log")
        plain_log_labels(ax.yaxis)
    if pts:
        xs = [x for x, _ in pts]
        mid = [ci[0] for _, ci in pts]
        err = [[ci[0] - ci[1] for _, ci in pts], [ci[2] - ci[0] for _, ci in pts]]
        ax.errorbar(xs, mid, yerr=err, color=color, marker="o", markersize=5, capsize=4, linewidth=1.6,
                    label="deep vs best alternative (95% CI)")
    ax.axhline(limit, color="#000000", linestyle="--", linewidth=1.0, label=f"{limit_label} ({limit:g})")
    if breaking is not None:
        x = axis.x(breaking)
        if x is not None:
            ax.axvline(x, color=BREAKING_COLOR, linewidth=7, alpha=0.25, label=f"breaking point ({_short(breaking)})")


def style_axes(ax: Any, ylabel: str, title: str | None = None, legend: bool = True) -> None:
    """Light grid, no top/right spines, the y label; a legend inside the axes unless `legend=False`
    (the report puts it below the axes with `legend_below`)."""
    ax.set_ylabel(ylabel)
    if ax.get_yscale() == "linear":
        # few, round ticks: tick artists are most of a small figure's drawing time
        ax.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    ax.grid(True, color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7.5, frameon=False, loc="best")


def legend_below(fig: Any, ax: Any, ncols: int = 3, rotated_ticks: bool = False, fontsize: float = 7.5) -> None:
    """The axes' legend under the plot, where it cannot hide data, in as many columns as fit the
    figure's width. Fixed margins instead of a layout engine: a constrained layout costs more than
    the rest of the figure."""
    handles, labels = ax.get_legend_handles_labels()
    labels = [textwrap.fill(t, 46) for t in labels]  # wrapped, never cut
    width, height = fig.get_figwidth(), fig.get_figheight()
    while ncols > 1 and _legend_width(labels, ncols, fontsize) > width - 0.1:
        ncols -= 1
    rows = -(-len(handles) // ncols) + sum(t.count("\n") for t in labels) // max(1, ncols) if handles else 0
    bottom = (0.46 + (0.3 if rotated_ticks else 0.0) + 0.16 * rows + (0.06 if rows else 0)) / height
    fig.subplots_adjust(left=0.8 / width, right=0.97, top=1 - 0.12 / height, bottom=bottom)
    if handles:
        fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncols=ncols, fontsize=fontsize,
                   frameon=False, columnspacing=1.2, handlelength=2.2, borderaxespad=0.3)


def _legend_width(labels: list[str], ncols: int, fontsize: float) -> float:
    """Estimated legend width in inches (matplotlib fills legend columns top to bottom)."""
    rows = -(-len(labels) // ncols)
    em = fontsize / 72
    columns = [labels[i:i + rows] for i in range(0, len(labels), rows)]
    longest = [max(len(line) for t in col for line in t.split("\n")) for col in columns]
    return sum(n * 0.58 * em + 4.2 * em for n in longest) + 0.8 * em


@dataclass(frozen=True)
class RefPoints:
    """A published figure's points for one panel."""

    label: str
    points: tuple[tuple[Any, float], ...]
    marker: str = "D"


@dataclass(frozen=True)
class Comparison:
    """Ratio/gap CIs per knob value and the rule's factor/margin."""

    knobs: tuple[Any, ...]
    cis: tuple[tuple[float, float, float], ...]
    limit: float
    limit_label: str
    log_y: bool = False


@dataclass(frozen=True)
class Panel:
    """Everything one report figure shows, as plain (picklable) data."""

    knobs: tuple[Any, ...]  # the knob axis, easy end first
    xlabel: str
    ylabel: str
    series: tuple[Series, ...] = ()
    knob_log: bool = False
    log_y: bool = False
    chance: tuple[float, ...] = ()
    success: float | None = None
    breaking: Any = None
    references: tuple[RefPoints, ...] = ()
    comparison: Comparison | None = None
    size: tuple[float, float] = (5.0, 3.6)


def draw_panel(ax: Any, panel: Panel) -> list[str]:
    """Draw a whole report panel on `ax`; returns notes on data that could not be drawn."""
    axis = KnobAxis(panel.knobs, panel.knob_log)
    notes: list[str] = []
    if panel.comparison is not None:
        c = panel.comparison
        plot_comparison(ax, c.knobs, c.cis, axis, c.limit, c.limit_label, c.log_y, panel.breaking)
    else:
        notes += plot_series(ax, panel.series, axis, panel.log_y)
        for i, chance in enumerate(panel.chance):
            plot_lines(ax, chance, panel.success if i == 0 else None, panel.breaking if i == 0 else None, axis)
        if not panel.chance:
            plot_lines(ax, None, panel.success, panel.breaking, axis)
        for ref in panel.references:
            notes += plot_reference(ax, ref.points, axis, ref.label, panel.log_y, ref.marker)
    axis.apply(ax, panel.xlabel)
    style_axes(ax, panel.ylabel, legend=False)
    return notes
