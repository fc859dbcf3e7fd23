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
) -> str:
    """An SVG line chart; gaps where a bucket had too few runs."""
    values = [p.value for p in points if p.value is not None]
    extra = [v for v in (reference, threshold) if v is not None]
    lo, hi, ticks = _nice(min(values + extra, default=0.0), max(values + extra, default=1.0))
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    n = max(1, len(points) - 1)

    def x(i: int) -> float:
        return LEFT + plot_w * (i / n if len(points) > 1 else 0.5)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - (v - lo) / (hi - lo))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="system-ui, sans-serif" font-size="11" '
        f'role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        f'<text x="{LEFT}" y="17" font-size="13" font-weight="600" fill="#222">'
        f"{escape(title)}{escape(f' ({unit})' if unit else '')}</text>",
    ]
    for t in ticks:
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
            'stroke="#eee"/>'
        )
        out.append(
            f'<text x="{LEFT - 6}" y="{y(t) + 4:.1f}" text-anchor="end" fill="#666">'
            f"{_fmt(t)}</text>"
        )
    step = max(1, math.ceil(len(points) / 10))
    for i, p in enumerate(points):
        if i % step == 0 or i == len(points) - 1:
            out.append(
                f'<text x="{x(i):.1f}" y="{HEIGHT - 12}" text-anchor="middle" fill="#666">'
                f"{escape(p.label)}</text>"
            )
    if reference is not None:
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(reference):.1f}" '
            f'y2="{y(reference):.1f}" stroke="#888" stroke-dasharray="5 4"/>'
            f'<text x="{WIDTH - RIGHT}" y="{y(reference) - 4:.1f}" text-anchor="end" '
            'fill="#888">reference</text>'
        )
    if threshold is not None:
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(threshold):.1f}" '
            f'y2="{y(threshold):.1f}" stroke="#d33" stroke-width="1"/>'
            f'<text x="{WIDTH - RIGHT}" y="{y(threshold) - 4:.1f}" text-anchor="end" '
            'fill="#d33">threshold</text>'
        )
    segment: list[str] = []
    segments: list[list[str]] = []
    for i, p in enumerate(points):
        if p.value is None:
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
        out.append(
            f'<circle cx="{x(i):.1f}" cy="{y(p.value):.1f}" r="{radius}" fill="{colour}">'
            f"<title>{escape(p.label)}: {_fmt(p.value)}</title></circle>"
        )
    if not values:
        out.append(
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" fill="#999">'
            "not enough runs yet</text>"
        )
    out.append("</svg>")
    return "\n".join(out)
