"""Plots as inline SVG strings, written in Python (no plotting library, nothing fetched at view time).

Each function returns one ``<svg class="plot" data-plot=NAME>`` element; every mark carries a
``<title>`` with its exact numbers (shown on hover).
"""

from __future__ import annotations

from html import escape
from typing import Any, Sequence

PALETTE = ("#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2", "#97bbf5",
           "#9c6b4e", "#9498a0")
FONT = 'font-family="system-ui,sans-serif" font-size="11"'


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _svg(name: str, width: int, height: int, body: list[str], title: str) -> str:
    return (f'<svg class="plot" data-plot="{escape(name)}" xmlns="http://www.w3.org/2000/svg" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" {FONT}>'
            + "".join(body) + "</svg>")


def _text(x: float, y: float, s: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {extra}>{escape(s)}</text>'


def _legend(names: Sequence[str], x: float, y: float) -> list[str]:
    out = []
    for i, n in enumerate(names):
        out.append(f'<rect x="{x:.1f}" y="{y + 14 * i - 8:.1f}" width="10" height="10" fill="{color(i)}"/>')
        out.append(_text(x + 14, y + 14 * i + 1, n))
    return out


def _axis_x(x0: float, x1: float, y: float, lo: float, hi: float, fmt: str, label: str, ticks: int = 5) -> list[str]:
    out = [f'<line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" stroke="#888"/>']
    for k in range(ticks + 1):
        v = lo + (hi - lo) * k / ticks
        x = x0 + (x1 - x0) * k / ticks
        out += [f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 4}" stroke="#888"/>',
                _text(x, y + 15, format(v, fmt), "middle")]
    out.append(_text((x0 + x1) / 2, y + 29, label, "middle"))
    return out


def _axis_y(y0: float, y1: float, x: float, lo: float, hi: float, fmt: str, label: str, ticks: int = 5) -> list[str]:
    out = [f'<line x1="{x}" y1="{y0}" x2="{x}" y2="{y1}" stroke="#888"/>']
    for k in range(ticks + 1):
        v = lo + (hi - lo) * k / ticks
        y = y0 - (y0 - y1) * k / ticks
        out += [f'<line x1="{x - 4}" y1="{y:.1f}" x2="{x}" y2="{y:.1f}" stroke="#888"/>',
                _text(x - 6, y + 4, format(v, fmt), "end"),
                f'<line x1="{x}" y1="{y:.1f}" x2="9999" y2="{y:.1f}" stroke="#eee"/>' if k else ""]
    out.append(_text(12, (y0 + y1) / 2, label, "middle", f'transform="rotate(-90 12 {(y0 + y1) / 2:.1f})"'))
    return out


def dot_intervals(name: str, title: str, rows: Sequence[str], series: Sequence[str],
                  values: dict[tuple[str, str], dict[str, Any]]) -> str:
    """Horizontal dots with interval whiskers: one row per category, one colour per series (0-100 %)."""
    label_w, plot_w, row_h = 170, 420, max(12, 6 * len(series) + 6)
    legend_w = 200
    width = label_w + plot_w + legend_w + 20
    height = 40 + row_h * len(rows) + 40
    x0, x1 = label_w, label_w + plot_w
    body = [_text(x0, 16, title, extra='font-weight="bold"')]
    for r, row in enumerate(rows):
        yc = 30 + row_h * r
        if r % 2:
            body.append(f'<rect x="0" y="{yc}" width="{x1}" height="{row_h}" fill="#f6f6f6"/>')
        body.append(_text(label_w - 6, yc + row_h / 2 + 4, row[:28], "end"))
        for s, name_s in enumerate(series):
            m = values.get((row, name_s))
            if not m:
                continue
            y = yc + 6 + 6 * s
            xs = [x0 + plot_w * v for v in (m["low"], m["mean"], m["high"])]
            tip = escape(f"{name_s} · {row}: {100 * m['mean']:.1f} % [{100 * m['low']:.1f}, {100 * m['high']:.1f}], n={m['n']}")
            body.append(f'<g class="mark"><title>{tip}</title><line x1="{xs[0]:.1f}" y1="{y}" x2="{xs[2]:.1f}" y2="{y}" '
                        f'stroke="{color(s)}" stroke-width="1.5"/><circle cx="{xs[1]:.1f}" cy="{y}" r="3" '
                        f'fill="{color(s)}"/></g>')
    yb = 30 + row_h * len(rows) + 4
    body += _axis_x(x0, x1, yb, 0, 100, ".0f", "accuracy (%) with 95 % interval")
    body += _legend(series, x1 + 20, 40)
    return _svg(name, width, height, body, title)


def scatter(name: str, title: str, points: Sequence[dict[str, Any]], x_label: str, y_label: str) -> str:
    """Points with interval crosses on [0, 1] x [0, 1] and the diagonal; each point: label, x, y (mean/low/high)."""
    size, pad = 320, 50
    width, height = size + pad + 230, size + pad + 30
    x0, y0, x1, y1 = pad, size + 20, pad + size, 20

    def X(v: float) -> float:
        return x0 + (x1 - x0) * v

    def Y(v: float) -> float:
        return y0 - (y0 - y1) * v

    body = [_text(x0, 12, title, extra='font-weight="bold"'),
            f'<line x1="{X(0)}" y1="{Y(0)}" x2="{X(1)}" y2="{Y(1)}" stroke="#bbb" stroke-dasharray="4 3"/>']
    body += _axis_x(x0, x1, y0, 0, 100, ".0f", x_label)
    body += _axis_y(y0, y1, x0, 0, 100, ".0f", y_label)
    names = []
    for i, p in enumerate(points):
        x, y = p["x"], p["y"]
        names.append(p["label"])
        tip = escape(f"{p['label']}: {x_label} {100 * x['mean']:.1f} [{100 * x['low']:.1f}, {100 * x['high']:.1f}], "
                     f"{y_label} {100 * y['mean']:.1f} [{100 * y['low']:.1f}, {100 * y['high']:.1f}]")
        body.append(f'<g class="mark"><title>{tip}</title>'
                    f'<line x1="{X(x["low"]):.1f}" y1="{Y(y["mean"]):.1f}" x2="{X(x["high"]):.1f}" y2="{Y(y["mean"]):.1f}" stroke="{color(i)}"/>'
                    f'<line x1="{X(x["mean"]):.1f}" y1="{Y(y["low"]):.1f}" x2="{X(x["mean"]):.1f}" y2="{Y(y["high"]):.1f}" stroke="{color(i)}"/>'
                    f'<circle cx="{X(x["mean"]):.1f}" cy="{Y(y["mean"]):.1f}" r="4" fill="{color(i)}"/></g>')
    body += _legend(names, x1 + 20, 30)
    return _svg(name, width, height, body, title)


def lines(name: str, title: str, series: Sequence[tuple[str, Sequence[dict[str, float]]]], x_label: str,
          y_label: str, *, percent: bool = False, band: bool = False) -> str:
    """Line chart: series of points {x, y[, low, high]}; with ``band`` the interval is shaded."""
    width, height, pad_l, pad_b = 620, 260, 60, 45
    x0, x1, y0, y1 = pad_l, width - 180, height - pad_b, 24
    pts = [p for _, ps in series for p in ps]
    if not pts:
        return ""
    xmin, xmax = min(p["x"] for p in pts), max(p["x"] for p in pts)
    if percent:
        ymin, ymax = 0.0, 1.0
    else:
        lows = [p.get("low", p["y"]) for p in pts]
        highs = [p.get("high", p["y"]) for p in pts]
        ymin, ymax = min(lows), max(highs)
        if ymin == ymax:
            ymin, ymax = ymin - 1, ymax + 1
    if xmin == xmax:
        xmin, xmax = xmin - 1, xmax + 1

    def X(v: float) -> float:
        return x0 + (x1 - x0) * (v - xmin) / (xmax - xmin)

    def Y(v: float) -> float:
        return y0 - (y0 - y1) * (v - ymin) / (ymax - ymin)

    scale = 100 if percent else 1
    fmt = ".0f" if percent or abs(ymax - ymin) >= 10 else (".3g")
    body = [_text(x0, 14, title, extra='font-weight="bold"')]
    body += _axis_y(y0, y1, x0, ymin * scale, ymax * scale, fmt, y_label, 4)
    integer_x = all(float(p["x"]).is_integer() for p in pts)
    x_ticks = max(1, min(5, int(xmax - xmin))) if integer_x else 5  # no repeated labels on a short step axis
    body += _axis_x(x0, x1, y0, xmin, xmax, ".0f" if integer_x else ".3g", x_label, x_ticks)
    for i, (label, ps) in enumerate(series):
        ps = sorted(ps, key=lambda p: p["x"])
        if band and all("low" in p for p in ps) and len(ps) > 1:
            poly = [f"{X(p['x']):.1f},{Y(p['high']):.1f}" for p in ps] + [
                f"{X(p['x']):.1f},{Y(p['low']):.1f}" for p in reversed(ps)]
            body.append(f'<polygon points="{" ".join(poly)}" fill="{color(i)}" opacity="0.18"/>')
        path = " ".join(f"{X(p['x']):.1f},{Y(p['y']):.1f}" for p in ps)
        body.append(f'<polyline points="{path}" fill="none" stroke="{color(i)}" stroke-width="1.8"/>')
        for p in ps if len(ps) <= 60 else ():
            interval = f" [{p['low'] * scale:.1f}, {p['high'] * scale:.1f}]" if "low" in p else ""
            tip = escape(f"{label}: {x_label} {p['x']:g}, {y_label} {p['y'] * scale:.4g}{interval}")
            body.append(f'<circle class="mark" cx="{X(p["x"]):.1f}" cy="{Y(p["y"]):.1f}" r="2.5" fill="{color(i)}">'
                        f"<title>{tip}</title></circle>")
    body += _legend([s[0] for s in series], x1 + 16, 36)
    return _svg(name, width, height, body, title)


def reliability_diagram(name: str, title: str, bins: Sequence[dict[str, Any]], ece: float, n: int) -> str:
    """Bars of accuracy per confidence bin against the diagonal; bar opacity grows with the bin's count."""
    size, pad = 220, 45
    width, height = size + pad + 20, size + pad + 30
    x0, y0, x1, y1 = pad, size + 22, pad + size, 22
    top = max(b["n"] for b in bins) or 1
    body = [_text(x0, 12, title, extra='font-weight="bold"'),
            f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="#bbb" stroke-dasharray="4 3"/>']
    for b in bins:
        if not b["n"]:
            continue
        bx = x0 + size * b["low"]
        bw = size * (b["high"] - b["low"]) - 1
        h = size * b["accuracy"]
        tip = escape(f"confidence {b['low']:.1f}–{b['high']:.1f}: n={b['n']}, mean confidence "
                     f"{b['confidence']:.3f}, accuracy {b['accuracy']:.3f}")
        body.append(f'<rect class="mark" x="{bx:.1f}" y="{y0 - h:.1f}" width="{bw:.1f}" height="{h:.1f}" fill="#4269d0" '
                    f'opacity="{0.25 + 0.75 * b["n"] / top:.2f}"><title>{tip}</title></rect>')
        cy = y0 - size * b["confidence"]
        body.append(f'<line x1="{bx:.1f}" y1="{cy:.1f}" x2="{bx + bw:.1f}" y2="{cy:.1f}" stroke="#ff725c" stroke-width="2"/>')
    body += _axis_x(x0, x1, y0, 0, 1, ".1f", "confidence", 5)
    body += _axis_y(y0, y1, x0, 0, 1, ".1f", "accuracy", 5)
    body.append(_text(x0 + 6, y1 + 12, f"ECE {ece:.3f} · n={n}"))
    return _svg(name, width, height, body, title)


def grouped_bars(name: str, title: str, categories: Sequence[str], series: Sequence[tuple[str, Sequence[float]]],
                 y_label: str) -> str:
    """Vertical bars: one group per category, one bar per series (values are shares or counts)."""
    width = max(360, 60 + len(categories) * (len(series) * 12 + 14) + 200)
    height, pad_l, pad_b = 230, 50, 45
    x0, x1, y0, y1 = pad_l, width - 190, height - pad_b, 24
    top = max((v for _, vs in series for v in vs), default=1) or 1
    body = [_text(x0, 14, title, extra='font-weight="bold"')]
    body += _axis_y(y0, y1, x0, 0, top, ".2g", y_label, 4)
    group_w = (x1 - x0) / max(1, len(categories))
    bar_w = max(2.0, min(14.0, (group_w - 8) / max(1, len(series))))
    for c, cat in enumerate(categories):
        gx = x0 + group_w * c + 4
        for s, (label, values) in enumerate(series):
            v = values[c]
            h = (y0 - y1) * v / top
            tip = escape(f"{label} · {cat}: {v:.4g}")
            body.append(f'<rect class="mark" x="{gx + bar_w * s:.1f}" y="{y0 - h:.1f}" width="{bar_w - 1:.1f}" '
                        f'height="{h:.1f}" fill="{color(s)}"><title>{tip}</title></rect>')
        body.append(_text(gx + bar_w * len(series) / 2, y0 + 14, cat[:14], "middle"))
    body.append(f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#888"/>')
    body += _legend([s[0] for s in series], x1 + 16, 36)
    return _svg(name, width, height, body, title)
