"""Line charts as SVG, drawn on the server: no chart library runs in the browser.

Pure functions over (timestamps, values) series, times in seconds since the epoch (datetimes are
taken too). `downsample` keeps a chart small however long its window (one point per bucket of
time, the bucket's max or mean); `rate` turns a counter into its increase per second;
`line_chart` draws one or more lines over a fixed window with a few labelled ticks on each axis,
breaks a line where samples are missing, marks each line's latest point, and says each line's
latest, lowest and highest value in a legend and in the <desc> that screen readers read.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from statistics import median

from markupsafe import Markup, escape

MAX_POINTS = 300
WIDTH, PLOT_HEIGHT = 520, 160
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 12, 26
LEGEND_ROW = 18
# Okabe and Ito's colours, told apart with colour blindness; past seven a line is dashed too
COLOURS = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000")
DASHES = ("", "6 3", "2 3")
TICK_STEPS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400)


def _seconds(moment: float | datetime) -> float:
    if isinstance(moment, datetime):
        return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
    return float(moment)


@dataclass(frozen=True)
class Line:
    """One line of a chart: its points (at most MAX_POINTS once downsampled) and what its raw
    samples were (latest, lowest, highest), so that downsampling never changes what is said."""
    label: str
    times: list[float]
    values: list[float]
    latest: float | None
    low: float | None
    high: float | None


def downsample(times: Sequence[float | datetime], values: Sequence[float], *, start: float, end: float,
               points: int = MAX_POINTS, how: str = "max") -> tuple[list[float], list[float]]:
    """At most `points` points: the window [start, end] cut into `points` buckets of equal time,
    each bucket with samples giving one point at its last sample's time with the samples' max (or
    mean). Series with no more than `points` samples are returned as they are."""
    seconds = [_seconds(t) for t in times]
    if len(seconds) <= points:
        return seconds, [float(v) for v in values]
    width = (end - start) / points if end > start else 1.0
    buckets: dict[int, tuple[float, list[float]]] = {}
    for moment, value in zip(seconds, values):
        index = min(points - 1, max(0, int((moment - start) // width)))
        last, held = buckets.setdefault(index, (moment, []))
        held.append(float(value))
        buckets[index] = (max(last, moment), held)
    pick: Callable[[list[float]], float] = max if how == "max" else (lambda held: sum(held) / len(held))
    ordered = sorted(buckets.items())
    return [moment for _, (moment, _) in ordered], [pick(held) for _, (_, held) in ordered]


def rate(times: Sequence[float | datetime], values: Sequence[float]) -> tuple[list[float], list[float]]:
    """A counter's increase per second between each sample and the one before it, at the later
    one's time. A counter that went down was restarted: that step is left out."""
    seconds = [_seconds(t) for t in times]
    out_times, out_values = [], []
    for i in range(1, len(seconds)):
        elapsed, grown = seconds[i] - seconds[i - 1], values[i] - values[i - 1]
        if elapsed > 0 and grown >= 0:
            out_times.append(seconds[i])
            out_values.append(grown / elapsed)
    return out_times, out_values


def line(label: str, times: Sequence[float | datetime], values: Sequence[float], *, start: float, end: float,
         points: int = MAX_POINTS, how: str = "max") -> Line:
    """A chart's line from its raw samples: summarised, then downsampled."""
    kept = [float(v) for v in values]
    shown_times, shown = downsample(times, kept, start=start, end=end, points=points, how=how)
    return Line(label=label, times=shown_times, values=shown, latest=kept[-1] if kept else None,
                low=min(kept) if kept else None, high=max(kept) if kept else None)


# --- how values read ---

def _number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{_number(value)} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _duration(value: float) -> str:
    if abs(value) >= 3600:
        return f"{_number(value / 3600)} h"
    if abs(value) >= 120:
        return f"{_number(value / 60)} min"
    return f"{_number(value)} s"


UNITS: dict[str, Callable[[float], str]] = {
    "count": _number,
    "bytes": _bytes,
    "seconds": _duration,
    "cpu": lambda value: f"{_number(value * 100)}%",  # CPU seconds per second, as a share of one core
}


def nice_ceiling(value: float, unit: str = "count") -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten (of 1024 for bytes, in whole KiB, MiB,
    GiB) not below `value`: the top of a value axis."""
    if value <= 0:
        return 1.0
    scale = 1.0
    if unit == "bytes":
        while value / scale >= 1024 and scale < 1024 ** 3:
            scale *= 1024
    base = value / scale
    power = 10 ** math.floor(math.log10(base))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= base * (1 - 1e-9):
            return step * power * scale
    return 10 * power * scale


def time_ticks(start: float, end: float, *, most: int = 7) -> list[tuple[float, str]]:
    """A few moments on whole minutes, hours or days (UTC) between start and end, labelled."""
    span = max(end - start, 1.0)
    step = next((s for s in TICK_STEPS if span / s <= most), TICK_STEPS[-1])
    shape = "%H:%M" if step < 86400 else "%b %d"
    first = math.ceil(start / step) * step
    return [(moment, datetime.fromtimestamp(moment, timezone.utc).strftime(shape))
            for moment in range(int(first), int(end) + 1, step)]


# --- drawing ---

def _segments(times: list[float], values: list[float]) -> list[list[tuple[float, float]]]:
    """The line's runs of points, broken where a gap is over three times its usual step."""
    if not times:
        return []
    steps = [b - a for a, b in zip(times, times[1:]) if b > a]
    gap = 3 * median(steps) if steps else math.inf
    runs: list[list[tuple[float, float]]] = [[(times[0], values[0])]]
    for i in range(1, len(times)):
        if times[i] - times[i - 1] > gap:
            runs.append([])
        runs[-1].append((times[i], values[i]))
    return runs


def _summary(item: Line, say: Callable[[float], str]) -> str:
    if not item.values:
        return f"{item.label}: no samples"
    latest = item.values[-1] if item.latest is None else item.latest
    low = min(item.values) if item.low is None else item.low
    high = max(item.values) if item.high is None else item.high
    return f"{item.label}: latest {say(latest)}, lowest {say(low)}, highest {say(high)}"


def empty_chart(title: str, *, note: str = "no samples yet") -> Markup:
    return Markup(f'<p class="chart-empty muted" role="note" aria-label="{escape(title)}: {escape(note)}">'
                  f'{escape(note)}</p>')


def line_chart(title: str, lines: Sequence[Line], *, start: float | datetime, end: float | datetime,
               unit: str = "count", ident: str = "chart", empty: str = "no samples yet") -> Markup:
    """An SVG line chart of `lines` over [start, end] (or `empty`'s words when no line has a point)."""
    start, end = _seconds(start), _seconds(end)
    drawn = [item for item in lines if item.times]
    if not drawn:
        return empty_chart(title, note=empty)
    say = UNITS[unit]
    top = nice_ceiling(max(max(item.values) for item in drawn), unit)
    span = max(end - start, 1.0)
    height = TOP + PLOT_HEIGHT + BOTTOM + LEGEND_ROW * len(drawn) + 6
    right = WIDTH - RIGHT
    bottom = TOP + PLOT_HEIGHT

    def x(moment: float) -> float:
        return LEFT + (min(max(moment, start), end) - start) / span * (right - LEFT)

    def y(value: float) -> float:
        return bottom - min(max(value, 0.0), top) / top * PLOT_HEIGHT

    words = "; ".join(_summary(item, say) for item in drawn)
    first, last = (datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%d %H:%M UTC") for moment in (start, end))
    out = [f'<svg class="line-chart" role="img" aria-label="{escape(title)}" aria-describedby="{ident}-desc" '
           f'viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg">',
           f'<title>{escape(title)}</title>',
           f'<desc id="{ident}-desc">{escape(f"From {first} to {last}. {words}.")}</desc>',
           '<g class="axes" font-size="11" fill="#5a6473">']
    for fraction in (0, 0.5, 1):  # value axis: 0, the middle, the top
        level = y(top * fraction)
        out.append(f'<line x1="{LEFT}" x2="{right}" y1="{level:.1f}" y2="{level:.1f}" stroke="#e3e7ed"/>'
                   f'<text x="{LEFT - 6}" y="{level + 4:.1f}" text-anchor="end">{escape(say(top * fraction))}</text>')
    for moment, label in time_ticks(start, end):
        at = x(moment)
        anchor = "end" if at > right - 20 else "start" if at < LEFT + 20 else "middle"  # kept inside the box
        out.append(f'<line x1="{at:.1f}" x2="{at:.1f}" y1="{bottom}" y2="{bottom + 4}" stroke="#9aa4b2"/>'
                   f'<text x="{at:.1f}" y="{bottom + 16}" text-anchor="{anchor}">{escape(label)}</text>')
    out.append(f'<text x="{LEFT - 6}" y="{bottom + 16}" text-anchor="end" font-size="10">UTC</text>'
               f'<line x1="{LEFT}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#9aa4b2"/></g>')
    for index, item in enumerate(drawn):
        colour, dash = COLOURS[index % len(COLOURS)], DASHES[index // len(COLOURS) % len(DASHES)]
        style = f'stroke="{colour}" stroke-width="1.6" fill="none" stroke-linejoin="round"'
        style += f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<g class="series" data-series="{escape(item.label)}">')
        for run in _segments(item.times, item.values):
            if len(run) == 1:  # a lone sample: a dot, as a line of one point shows nothing
                out.append(f'<circle cx="{x(run[0][0]):.1f}" cy="{y(run[0][1]):.1f}" r="1.8" fill="{colour}"/>')
            else:
                path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in run)
                out.append(f'<polyline points="{path}" {style}/>')
        end_x, end_y = x(item.times[-1]), y(item.values[-1])
        out.append(f'<circle class="latest" cx="{end_x:.1f}" cy="{end_y:.1f}" r="3" fill="{colour}"/></g>')
        row = bottom + BOTTOM + LEGEND_ROW * index + 12
        out.append(f'<g class="legend" font-size="12"><line x1="{LEFT}" x2="{LEFT + 18}" y1="{row - 4}" y2="{row - 4}" '
                   f'{style.replace("1.6", "3")}/><text x="{LEFT + 24}" y="{row}" fill="#1d2430">'
                   f'{escape(_summary(item, say))}</text></g>')
    out.append("</svg>")
    return Markup("".join(out))
