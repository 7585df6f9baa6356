"""Small inline SVG charts for the run report: no plotting library, no script, no network — a page stays one file."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

import numpy as np

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
WIDTH, HEIGHT, PAD = 420, 180, 34


def _frame(title: str, body: list[str], width: int = WIDTH, height: int = HEIGHT) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>'
            f'<text x="{width / 2}" y="14" text-anchor="middle" font-size="12">{escape(title)}</text>'
            + "".join(body) + "</svg>")


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def histogram(values: Sequence[float], title: str, bins: int = 20, marker: float | None = 0.0) -> str:
    """Counts of `values` in equal bins, with a vertical line at `marker` (0: design = best real item)."""
    values = np.asarray([v for v in values if v is not None and math.isfinite(v)], np.float64)
    if not len(values):
        return _frame(title, ['<text x="20" y="90" font-size="12">no finite values</text>'])
    lo, hi = float(values.min()), float(values.max())
    if marker is not None:
        lo, hi = min(lo, marker), max(hi, marker)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    plot_w, plot_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    x = lambda v: PAD + (v - lo) / (hi - lo) * plot_w  # noqa: E731
    top = max(int(counts.max()), 1)
    body = []
    for count, left, right in zip(counts, edges[:-1], edges[1:]):
        h = count / top * plot_h
        body.append(f'<rect x="{x(left):.1f}" y="{PAD + plot_h - h:.1f}" width="{max(x(right) - x(left) - 1, 1):.1f}" '
                    f'height="{h:.1f}" fill="{PALETTE[0]}"><title>{_fmt(left)} to {_fmt(right)}: {count}</title></rect>')
    if marker is not None:
        body.append(f'<line x1="{x(marker):.1f}" x2="{x(marker):.1f}" y1="{PAD}" y2="{PAD + plot_h}" '
                    'stroke="#333" stroke-dasharray="3,2"/>')
    body += [f'<line x1="{PAD}" x2="{PAD + plot_w}" y1="{PAD + plot_h}" y2="{PAD + plot_h}" stroke="#333"/>',
             f'<text x="{PAD}" y="{HEIGHT - 12}" font-size="10">{_fmt(lo)}</text>',
             f'<text x="{PAD + plot_w}" y="{HEIGHT - 12}" font-size="10" text-anchor="end">{_fmt(hi)}</text>',
             f'<text x="4" y="{PAD + 4}" font-size="10">{top}</text>',
             f'<text x="{WIDTH / 2}" y="{HEIGHT - 2}" font-size="10" text-anchor="middle">lift (n={len(values)})</text>']
    return _frame(title, body)


def bars(labels: Sequence[str], values: Sequence[float], title: str) -> str:
    """Horizontal bars around zero, one per label (e.g. the mean lift of each category)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return _frame(title, ['<text x="20" y="90" font-size="12">no finite values</text>'])
    row, left = 16, 110
    height = 2 * PAD + row * len(labels)
    lo, hi = min(min(finite), 0.0), max(max(finite), 0.0)
    span = (hi - lo) or 1.0
    plot_w = WIDTH - left - PAD
    x = lambda v: left + (v - lo) / span * plot_w  # noqa: E731
    body = [f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="{PAD - 4}" y2="{height - PAD + 4}" stroke="#333"/>']
    for k, (label, value) in enumerate(zip(labels, values)):
        y = PAD + k * row
        body.append(f'<text x="{left - 6}" y="{y + 11}" font-size="10" text-anchor="end">{escape(label)}</text>')
        if value is None or not math.isfinite(value):
            continue
        x0, x1 = sorted((x(0), x(value)))
        colour = PALETTE[2] if value > 0 else PALETTE[1]
        body.append(f'<rect x="{x0:.1f}" y="{y + 2}" width="{max(x1 - x0, 1):.1f}" height="{row - 4}" '
                    f'fill="{colour}"><title>{escape(label)}: {value:+.3f}</title></rect>')
    body.append(f'<text x="{left}" y="{height - 8}" font-size="10">{_fmt(lo)}</text>'
                f'<text x="{left + plot_w}" y="{height - 8}" font-size="10" text-anchor="end">{_fmt(hi)}</text>')
    return _frame(title, body, height=height)


def lines(x_labels: Sequence[str], series: Mapping[str, Sequence[float]], title: str,
          y_range: tuple[float, float] | None = None) -> str:
    """One line per series over the x labels (e.g. each judge's win share over run dates), with a legend."""
    points = [v for vs in series.values() for v in vs if v is not None and math.isfinite(v)]
    if not points or not x_labels:
        return _frame(title, ['<text x="20" y="90" font-size="12">no history yet</text>'])
    lo, hi = y_range or (min(points), max(points))
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    legend = 14 * len(series)
    height = HEIGHT + legend
    plot_w, plot_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    x = lambda k: PAD + (k / max(len(x_labels) - 1, 1)) * plot_w  # noqa: E731
    y = lambda v: PAD + (hi - v) / (hi - lo) * plot_h  # noqa: E731
    body = [f'<line x1="{PAD}" x2="{PAD + plot_w}" y1="{PAD + plot_h}" y2="{PAD + plot_h}" stroke="#333"/>',
            f'<text x="4" y="{PAD + 4}" font-size="10">{_fmt(hi)}</text>',
            f'<text x="4" y="{PAD + plot_h}" font-size="10">{_fmt(lo)}</text>',
            f'<text x="{PAD}" y="{PAD + plot_h + 14}" font-size="10">{escape(x_labels[0])}</text>',
            f'<text x="{PAD + plot_w}" y="{PAD + plot_h + 14}" font-size="10" text-anchor="end">'
            f'{escape(x_labels[-1])}</text>']
    for k, (name, values) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        pts = [(x(i), y(v)) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
        if len(pts) > 1:
            body.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
                        + " ".join(f"{px:.1f},{py:.1f}" for px, py in pts) + '"/>')
        body += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>' for px, py in pts]
        ly = HEIGHT + 14 * k
        body.append(f'<rect x="{PAD}" y="{ly - 8}" width="10" height="10" fill="{colour}"/>'
                    f'<text x="{PAD + 14}" y="{ly + 1}" font-size="10">{escape(name)}</text>')
    return _frame(title, body, height=height)
