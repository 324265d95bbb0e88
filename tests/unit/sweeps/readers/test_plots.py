import re
from pathlib import Path

import optuna

from slimsweep.sweeps.readers.plots import front_html, front_png
from slimsweep.sweeps.results.rows import read_results


def _study() -> optuna.Study:
    study = optuna.create_study(study_name="s", directions=["maximize", "minimize", "minimize"])
    study.set_metric_names(["accuracy", "size_bytes", "latency_ms_median"])
    points = [(0.99, 9e5, 1.3), (0.98, 2.5e5, 0.5), (0.97, 3e5, 0.6), (0.6, 7e4, 1.3)]
    for i, values in enumerate(points):
        attrs = {"recipe": f"recipe <{i}>", "baseline": i == 0}
        study.add_trial(optuna.trial.create_trial(values=list(values), user_attrs=attrs))
    return study


def test_png_is_a_real_image(tmp_path: Path) -> None:
    front_png(read_results(_study()), tmp_path / "front.png")
    data = (tmp_path / "front.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_html_has_one_point_per_trial_the_front_marked_and_recipes_on_hover(tmp_path: Path) -> None:
    results = read_results(_study())
    front_html(results, tmp_path / "front.html")
    page = (tmp_path / "front.html").read_text()
    circles = re.findall(r'<circle class="(\w+)"', page)
    assert len(circles) == 4
    assert circles.count("front") == len(results.front) == 3  # trial 2 is dominated by trial 1
    assert "recipe &lt;1&gt;" in page and "size_bytes = 250000" in page  # escaped, in tooltips
    assert "<script" not in page and "http" not in page  # self-contained
