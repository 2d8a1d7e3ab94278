"""A dependency-free SVG line chart, for pictures in READMEs and results folders (plotly needs a
browser or kaleido to make an image; this needs nothing)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

import numpy as np


def line_chart(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, title: str = "",
               xlabel: str = "", ylabel: str = "", colours: Sequence[str] = ("#0072B2",),
               width: int = 640, height: int = 360, percent: bool = True) -> str:
    """SVG text of one line per series ``name -> (x, y)``, with axes, ticks and a legend."""
    left, right, top, bottom = 62, 150, 36, 48
    pw, ph = width - left - right, height - top - bottom
    xs = np.concatenate([np.asarray(x, float) for x, _ in series.values()]) if series else np.zeros(1)
    ys = np.concatenate([np.asarray(y, float) for _, y in series.values()]) if series else np.zeros(1)
    ys = ys[np.isfinite(ys)] if np.isfinite(ys).any() else np.zeros(1)
    x0, x1 = float(xs.min()), float(max(xs.max(), xs.min() + 1))
    y0, y1 = _nice_range(float(ys.min()), float(ys.max()))

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="22" font-size="15" font-weight="bold">{escape(title)}</text>']
    for t in np.linspace(y0, y1, 6):
        label = f"{t:.0%}" if percent else f"{t:.3g}"
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{label}</text>')
    for t in np.unique(np.round(np.linspace(x0, x1, 6))):
        out.append(f'<text x="{px(t):.1f}" y="{top + ph + 16}" text-anchor="middle">{t:g}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 10}" text-anchor="middle">{escape(xlabel)}</text>')
    out.append(f'<text transform="translate(16 {top + ph / 2}) rotate(-90)" text-anchor="middle">'
               f"{escape(ylabel)}</text>")
    for i, (name, (x, y)) in enumerate(series.items()):
        colour = colours[i % len(colours)]
        pts = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(np.asarray(x, float), np.asarray(y, float),
                                                                   strict=True) if np.isfinite(b))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2.5"/>')
        ly = top + 14 + 20 * i
        out.append(f'<line x1="{left + pw + 12}" x2="{left + pw + 36}" y1="{ly - 4}" y2="{ly - 4}" '
                   f'stroke="{colour}" stroke-width="3"/>')
        out.append(f'<text x="{left + pw + 42}" y="{ly}">{escape(str(name))}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _nice_range(lo: float, hi: float) -> tuple[float, float]:
    if hi - lo < 1e-9:
        lo, hi = lo - 0.05, hi + 0.05
    pad = 0.05 * (hi - lo)
    return max(0.0, lo - pad) if lo >= 0 else lo - pad, min(1.0, hi + pad) if hi <= 1 else hi + pad
