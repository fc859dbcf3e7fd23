"""Small SVG charts of a signal over time, written by hand so a memo needs no plotting stack.

A chart shows the signal per bucket (day or window), the reference value as a dashed
line, a rule's threshold as a red line, and alert buckets as red dots. The SVG is
self-contained: it opens in a browser, embeds in HTML and renders in GitHub Markdown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 28, 36


@dataclass(frozen=True)
class Point:
    label: str  # the bucket, e.g. "11-17"
    value: float | None  # None: not enough runs in that bucket
    alert: bool = False
    partial: bool = False  # the bucket is still filling (today): drawn apart, hollow


def _nice(lo: float, hi: float) -> tuple[float, float, list[float]]:
    if not math.isfinite(lo) or not math.isfinite(hi):
        lo, hi = 0.0, 1.0
    if hi - lo < 1e-12:
        pad = abs(hi) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / 4
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    start = math.floor(lo / step) * step
    stop = math.ceil(hi / step) * step
    ticks = [start + i * step for i in range(int(round((stop - start) / step)) + 1)]
    return start, stop, ticks


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:.3g}"
    return f"{v:.2g}"


def line_chart(
    title: str,
    points: Sequence[Point],
    *,
    reference: float | None = None,
    threshold: float | None = None,
    unit: str = "",
    size: tuple[int, int] = (WIDTH, HEIGHT),
    empty: str = "not enough runs yet",
    from_zero: bool = False,
) -> str:
    """An SVG line chart of ``size`` (width, height); gaps where a bucket had too few runs.
    ``from_zero``: the axis starts at zero (counts and rates read truly), not at the lowest
    value (a drift reads larger)."""
    width, height = size
    values = [p.value for p in points if p.value is not None]
    extra = [v for v in (reference, threshold) if v is not None] + ([0.0] if from_zero else [])
    lo, hi, ticks = _nice(min(values + extra, default=0.0), max(values + extra, default=1.0))
    plot_w = width - LEFT - RIGHT
    plot_h = height - TOP - BOTTOM
    n = max(1, len(points) - 1)

    def x(i: int) -> float:
        return LEFT + plot_w * (i / n if len(points) > 1 else 0.5)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - (v - lo) / (hi - lo))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif" font-size="11" '
        f'role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{LEFT}" y="17" font-size="13" font-weight="600" fill="#222">'
        f"{escape(title)}{escape(f' ({unit})' if unit else '')}</text>",
    ]
    for t in ticks:
        out.append(
            f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
            'stroke="#eee"/>'
        )
        out.append(
            f'<text x="{LEFT - 6}" y="{y(t) + 4:.1f}" text-anchor="end" fill="#666">'
            f"{_fmt(t)}</text>"
        )
    step = max(1, math.ceil(len(points) / max(2, plot_w // 56)))  # 10 labels in 640 px
    for i, p in enumerate(points):
        if i % step == 0 or i == len(points) - 1:
            out.append(
                f'<text x="{x(i):.1f}" y="{height - 12}" text-anchor="middle" fill="#666">'
                f"{escape(p.label)}</text>"
            )
    if reference is not None:
        out.append(
            f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{y(reference):.1f}" '
            f'y2="{y(reference):.1f}" stroke="#888" stroke-dasharray="5 4"/>'
            f'<text x="{width - RIGHT}" y="{y(reference) - 4:.1f}" text-anchor="end" '
            'fill="#888">reference</text>'
        )
    if threshold is not None:
        out.append(
            f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{y(threshold):.1f}" '
            f'y2="{y(threshold):.1f}" stroke="#d33" stroke-width="1"/>'
            f'<text x="{width - RIGHT}" y="{y(threshold) - 4:.1f}" text-anchor="end" '
            'fill="#d33">threshold</text>'
        )
    segment: list[str] = []
    segments: list[list[str]] = []
    band = plot_w / max(1, len(points))
    bands: list[str] = []
    for i, p in enumerate(points):
        if p.alert:  # a band behind the day, seen even where the value is missing
            bands.append(
                f'<rect x="{x(i) - band / 2:.1f}" y="{TOP}" width="{band:.1f}" '
                f'height="{plot_h}" fill="#fde2e2"><title>{escape(p.label)}: alert</title></rect>'
            )
    out[3:3] = bands  # behind the grid, the lines and the points
    for i, p in enumerate(points):
        if p.value is None or p.partial:
            if segment:
                segments.append(segment)
            segment = []
            continue
        segment.append(f"{x(i):.1f},{y(p.value):.1f}")
    if segment:
        segments.append(segment)
    for seg in segments:
        out.append(
            f'<polyline fill="none" stroke="#2563eb" stroke-width="2" points="{" ".join(seg)}"/>'
        )
    for i, p in enumerate(points):
        if p.value is None:
            continue
        colour = "#d33" if p.alert else "#2563eb"
        radius = 4 if p.alert else 2.5
        fill = f'fill="{colour}"'
        if p.partial:
            fill = f'fill="#fff" stroke="{colour}" stroke-width="1.5"'
        note = " so far" if p.partial else ""
        out.append(
            f'<circle cx="{x(i):.1f}" cy="{y(p.value):.1f}" r="{radius}" {fill}>'
            f"<title>{escape(p.label)}{note}: {_fmt(p.value)}</title></circle>"
        )
    if not values:
        out.append(
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#999">'
            f"{escape(empty)}</text>"
        )
    out.append("</svg>")
    return "\n".join(out)


def sparkline(
    values: Sequence[float | None], *, label: str, width: int = 120, height: int = 24
) -> str:
    """A tiny SVG line of ``values`` (gaps where None), from zero up, for a table cell;
    ``label`` is what a screen reader and a hover say."""
    known = [v for v in values if v is not None]
    top = max(known, default=0.0) or 1.0
    n = max(1, len(values) - 1)
    segments: list[list[str]] = [[]]
    for i, v in enumerate(values):
        if v is None:
            segments.append([])
            continue
        x = 1 + (width - 2) * i / n
        y = height - 2 - (height - 4) * (v / top)
        segments[-1].append(f"{x:.1f},{y:.1f}")
    lines = "".join(
        f'<polyline fill="none" stroke="#2563eb" stroke-width="1.5" points="{" ".join(seg)}"/>'
        for seg in segments
        if seg
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">'
        f"<title>{escape(label)}</title>{lines}</svg>"
    )
