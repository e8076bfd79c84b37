#!/usr/bin/env python3
"""Draw the CSV written by `custos bench soak --csv FILE` as one SVG.

Two panels over the minutes of the run: latency (p50, p99 and p99.9 of each
minute's requests, log scale) and the server's resident memory. Standard
library only, so it runs wherever Python does.

    python3 scripts/plot-soak.py soak.csv docs/img/soak.svg --title "..."
"""

import argparse
import csv
import math
import sys

WIDTH, PANEL_H, LEFT, RIGHT, TOP, GAP = 760, 220, 70, 20, 40, 60


def load(path):
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            rows.append(row)
    if not rows:
        sys.exit(f"{path}: no rows")
    return rows


def polyline(points, color, dash=""):
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<polyline fill="none" stroke="{color}" stroke-width="1.6"{dash_attr} points="{pts}"/>'


def text(x, y, s, anchor="start", size=12, weight="normal"):
    s = s.replace("&", "&amp;").replace("<", "&lt;")
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" font-weight="{weight}" '
            f'text-anchor="{anchor}" font-family="sans-serif">{s}</text>')


def panel(out, top, minutes, series, ylabel, log, unit):
    plot_w = WIDTH - LEFT - RIGHT
    values = [v for _, vals, _ in series for v in vals if v is not None and v > 0]
    lo, hi = (min(values), max(values)) if values else (1, 10)
    if log:
        lo = 10 ** math.floor(math.log10(lo))
        hi = 10 ** math.ceil(math.log10(hi))
        ticks = [10 ** e for e in range(int(math.log10(lo)), int(math.log10(hi)) + 1)]

        def fy(v):
            return top + PANEL_H - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * PANEL_H
    else:
        lo = 0
        step = 10 ** math.floor(math.log10(hi)) if hi > 0 else 1
        hi = math.ceil(hi * 1.1 / step) * step
        ticks = [lo + i * (hi - lo) / 4 for i in range(5)]

        def fy(v):
            return top + PANEL_H - (v - lo) / (hi - lo) * PANEL_H
    last = max(minutes) if minutes else 1

    def fx(m):
        return LEFT + (m / last if last else 0) * plot_w

    out.append(f'<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL_H}" fill="none" stroke="#999"/>')
    for t in ticks:
        y = fy(t)
        out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        label = f"{t:g} {unit}"
        out.append(text(LEFT - 6, y + 4, label, anchor="end", size=11))
    for m in range(0, last + 1, 10 if last >= 20 else 1):
        out.append(text(fx(m), top + PANEL_H + 16, str(m), anchor="middle", size=11))
    out.append(text(LEFT, top - 8, ylabel, weight="bold"))
    legend_x = LEFT + plot_w
    for name, vals, (color, dash) in series:
        pts = [(fx(m), fy(v)) for m, v in zip(minutes, vals) if v is not None and v > 0]
        out.append(polyline(pts, color, dash))
        out.append(text(legend_x, top - 8, name, anchor="end", size=11))
        legend_x -= 8 * len(name) + 20
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line x1="{legend_x + 4}" x2="{legend_x + 16}" y1="{top - 12}" y2="{top - 12}" '
                   f'stroke="{color}" stroke-width="2"{dash_attr}/>')
        legend_x -= 4


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("svg")
    ap.add_argument("--title", default="custos bench soak")
    args = ap.parse_args()
    rows = load(args.csv)
    minutes = [int(r["minute"]) for r in rows]

    def col(name):
        return [float(r[name]) if r.get(name) not in (None, "") else None for r in rows]

    height = TOP + 2 * PANEL_H + GAP + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}">',
           f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
           text(WIDTH / 2, 20, args.title, anchor="middle", size=14, weight="bold")]
    panel(out, TOP + 10, minutes,
          [("p99.9", col("p999_ms"), ("#c44", "4 3")),
           ("p99", col("p99_ms"), ("#c44", "")),
           ("p50", col("p50_ms"), ("#36c", ""))],
          "latency per minute", log=True, unit="ms")
    panel(out, TOP + 10 + PANEL_H + GAP, minutes,
          [("server RSS", col("rss_mb"), ("#393", ""))],
          "resident memory", log=False, unit="MiB")
    out.append(text(WIDTH / 2, height - 6, "minute of the run", anchor="middle", size=11))
    out.append("</svg>")
    with open(args.svg, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
