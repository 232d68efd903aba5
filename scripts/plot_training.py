#!/usr/bin/env python3
"""Plots the training benchmark (system/tests/train_bench.rs) as an SVG, standard library only:
held-out accuracy against rounds, and against what the buyer paid, one line per market.

    python3 scripts/plot_training.py target/train-bench.json docs/training-bench.svg
"""

import json
import sys

W, H = 880, 360
PANEL = 380
MARGIN = dict(left=60, right=20, top=40, bottom=50)
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"]


def label(run):
    q = run["sampling_ppm"] / 1e6
    checked = "no checks" if q < 0.001 else f"q = {q:g}"
    n = run["providers"]
    return f"{n} provider{'s' if n > 1 else ''}, {checked}"


def panel(x0, title, xlabel, series, xmax, ymin, ymax):
    """An SVG group: axes, ticks, and each series as a polyline of (x, y) points."""
    left, top = x0 + MARGIN["left"], MARGIN["top"]
    w = PANEL - MARGIN["left"] - MARGIN["right"]
    h = H - MARGIN["top"] - MARGIN["bottom"]

    def px(x, y):
        return left + w * x / xmax, top + h * (1 - (y - ymin) / (ymax - ymin))

    out = [f'<text x="{left + w / 2}" y="20" text-anchor="middle" font-weight="bold">{title}</text>']
    out.append(f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#888"/>')
    for i in range(6):
        y = ymin + (ymax - ymin) * i / 5
        _, yy = px(0, y)
        out.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{left + w}" y2="{yy:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{y:.0%}</text>')
    for i in range(6):
        x = xmax * i / 5
        xx, _ = px(x, ymin)
        out.append(f'<text x="{xx:.1f}" y="{top + h + 16}" text-anchor="middle">{x:.3g}</text>')
    out.append(f'<text x="{left + w / 2}" y="{H - 10}" text-anchor="middle">{xlabel}</text>')
    for colour, points in series:
        pts = " ".join("%.1f,%.1f" % px(x, y) for x, y in points)
        out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
    return out


def main(src, dst):
    doc = json.load(open(src))
    runs = doc["runs"]
    by_round, by_cost = [], []
    max_round, max_cost = 1, 1e-9
    for i, run in enumerate(runs):
        colour = COLOURS[i % len(COLOURS)]
        rounds = run["rounds"]
        by_round.append((colour, [(r["round"], r["accuracy"]) for r in rounds]))
        cost = [(int(r["paid"]) / 1e9, r["accuracy"]) for r in rounds]
        by_cost.append((colour, cost))
        max_round = max(max_round, rounds[-1]["round"])
        max_cost = max(max_cost, cost[-1][0])
    ymin = 0.0
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H + 20 * len(runs)}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="100%" height="100%" fill="white"/>']
    svg += panel(0, "Held-out accuracy by round", "round", by_round, max_round, ymin, 1.0)
    svg += panel(PANEL + 40, "Held-out accuracy by cost", "paid (10^9 base units)", by_cost,
                 max_cost, ymin, 1.0)
    for i, run in enumerate(runs):
        y = H + 20 * i
        colour = COLOURS[i % len(COLOURS)]
        svg.append(f'<line x1="70" y1="{y - 4}" x2="100" y2="{y - 4}" stroke="{colour}" stroke-width="2"/>')
        svg.append(f'<text x="108" y="{y}">{label(run)}: {run["seconds"]:.0f} s for '
                   f'{len(run["rounds"]) - 1} rounds, compute {run["overhead"]:.2f}x the shard '
                   f'jobs (1 + q·k = {run["predicted_overhead"]:.2f})</text>')
    svg.append("</svg>")
    with open(dst, "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
