"""The front as pictures for the sweep's MLflow run: a PNG, and a self-contained HTML page
whose points show their recipe on hover (SVG tooltips: no script, nothing fetched)."""

import html
from pathlib import Path

from slimsweep.sweeps.results.rows import SweepResults


def _points(results: SweepResults) -> tuple[list[str], list[dict]]:
    """Objective names and, per completed trial, its values, recipe and whether it is on the
    front (with the front's quiet latencies where it has them)."""
    front = {r.trial: r for r in results.front}
    points = [
        {
            "trial": row.trial,
            "values": front.get(row.trial, row).values,
            "recipe": row.recipe,
            "front": row.trial in front,
            "baseline": row.baseline,
        }
        for row in results.rows
    ]
    return list(results.objectives), points


def front_png(results: SweepResults, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, points = _points(results)
    y_name, x_name = names[0], names[1 % len(names)]
    colour = names[2] if len(names) > 2 else y_name
    figure, axes = plt.subplots(figsize=(8, 5), dpi=110)
    scatter = axes.scatter(
        [p["values"][x_name] for p in points],
        [p["values"][y_name] for p in points],
        c=[p["values"][colour] for p in points],
        s=[90 if p["front"] else 30 for p in points],
        edgecolors=["red" if p["front"] else "none" for p in points],
        cmap="viridis",
    )
    for p in points:
        if p["front"] or p["baseline"]:
            label = f"{p['trial']}" + (" (baseline)" if p["baseline"] else "")
            axes.annotate(label, (p["values"][x_name], p["values"][y_name]), fontsize=8)
    figure.colorbar(scatter, label=colour)
    axes.set_xscale("log")
    axes.set_xlabel(f"{x_name} (log)")
    axes.set_ylabel(y_name)
    axes.set_title(f"{results.name}: front outlined in red")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


STYLE = """
body { font-family: sans-serif; margin: 2em; }
circle.trial { fill: #9aa5b1; }
circle.front { fill: #d64545; }
circle.baseline { fill: #2f6fde; }
circle:hover { stroke: black; stroke-width: 2; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 4px 8px; }
"""


def front_svg(results: SweepResults) -> str:
    """Quality against size (log), every completed trial a point, its recipe on hover."""
    import math

    names, points = _points(results)
    y_name, x_name = names[0], names[1 % len(names)]
    width, height, margin = 760, 420, 60
    xs = [math.log10(max(p["values"][x_name], 1e-12)) for p in points]
    ys = [p["values"][y_name] for p in points]

    def scale(value: float, low: float, high: float, size: int) -> float:
        return margin + (value - low) / ((high - low) or 1.0) * (size - 2 * margin)

    circles = []
    for p, x, y in zip(points, xs, ys, strict=True):
        cx = scale(x, min(xs), max(xs), width)
        cy = height - scale(y, min(ys), max(ys), height)
        tip = "\n".join(
            [f"trial {p['trial']}" + (" (baseline)" if p["baseline"] else ""), p["recipe"]]
            + [f"{n} = {v:.6g}" for n, v in p["values"].items()]
        )
        kind = "front" if p["front"] else "baseline" if p["baseline"] else "trial"
        circles.append(
            f'<circle class="{kind}" cx="{cx:.1f}" cy="{cy:.1f}" r="{7 if p["front"] else 4}">'
            f"<title>{html.escape(tip)}</title></circle>"
        )
    return f"""<svg id="front" width="{width}" height="{height}" role="img">
<line x1="{margin}" y1="{height - margin}"
  x2="{width - margin}" y2="{height - margin}" stroke="black"/>
<line x1="{margin}" y1="{margin}" x2="{margin}" y2="{height - margin}" stroke="black"/>
<text x="{width / 2}" y="{height - 15}" text-anchor="middle">{html.escape(x_name)} (log)</text>
<text x="15" y="{height / 2}" transform="rotate(-90 15 {height / 2})"
  text-anchor="middle">{html.escape(y_name)}</text>
{"".join(circles)}
</svg>"""


def page(title: str, body: str) -> str:
    """A self-contained HTML page: inline style, no script, nothing fetched."""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head><body>
{body}
</body></html>
"""


def front_html(results: SweepResults, path: Path) -> None:
    body = f"""<h1>{html.escape(results.name)}</h1>
<p>{len(results.rows)} completed trials; <span style="color:#d64545">front</span>,
<span style="color:#2f6fde">baseline</span>, others grey. Hover a point for its recipe.</p>
{front_svg(results)}"""
    path.write_text(page(f"{results.name}: Pareto front", body))
