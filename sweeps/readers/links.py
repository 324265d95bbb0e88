"""Links into the MLflow UI that land on the answer: the sweep's runs table sorted by its
first objective with every objective as a column, and the front alone.

MLflow opens a runs-table view from the URL parameter `viewStateShareKey`, whose state is an
experiment tag (`mlflow.sharedViewState.<key>`); `workflowType=machine_learning` opens the
model-training pages instead of the GenAI overview."""

import json
from typing import Any
from urllib.parse import urlencode

from slimsweep.sweeps.results.keys import PARETO_TAG, QUIET_SUFFIX, ROLE_TAG, VIEW_TAG_PREFIX

RUNS_VIEW = "slimsweep-runs"
FRONT_VIEW = "slimsweep-front"
UI_PORT = 5000  # where `slimsweep ui` serves MLflow unless told otherwise


def view_tags(objectives: dict[str, bool], parent_run_id: str) -> dict[str, str]:
    """Experiment tags holding the two views (their MLflow UI state, as JSON)."""
    trials = f"tags.`{ROLE_TAG}` = 'trial'"
    views = {
        RUNS_VIEW: trials,
        FRONT_VIEW: f"{trials} and tags.`{PARETO_TAG}` = 'true'",
    }
    return {
        f"{VIEW_TAG_PREFIX}{key}": json.dumps(_state(objectives, parent_run_id, search))
        for key, search in views.items()
    }


def _state(objectives: dict[str, bool], parent_run_id: str, search: str) -> dict[str, Any]:
    first, maximized = next(iter(objectives.items()))
    latency = [f"{n}{QUIET_SUFFIX}" for n in objectives if n.startswith("latency_ms")]
    columns = [f"metrics.`{name}`" for name in [*objectives, *latency]]
    return {
        # what the table shows (MLflow's search facets)
        "searchFilter": search,
        "orderByKey": f"metrics.`{first}`",
        "orderByAsc": not maximized,
        # how it shows it (MLflow's UI state; every field, as a saved view has them)
        "selectedColumns": [*columns, f"tags.`{PARETO_TAG}`"],
        "columnOrder": [],
        "columnWidths": {},
        "runsExpanded": {parent_run_id: True},
        "runsPinned": [],
        "runsHidden": [],
        "runsVisibilityMap": {},
        "runsHiddenMode": "SHOW_ALL",
        "viewMaximized": False,
        "runListHidden": False,
        "isAccordionReordered": False,
        "useGroupedValuesInCharts": True,
        "hideEmptyCharts": True,
        "groupBy": None,
        "groupsExpanded": {},
        "autoRefreshEnabled": False,
        "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0},
    }


def view_url(experiment_id: str, view: str, base: str = f"http://127.0.0.1:{UI_PORT}") -> str:
    query = urlencode({"viewStateShareKey": view, "workflowType": "machine_learning"})
    return f"{base}/#/experiments/{experiment_id}/runs?{query}"


def link_lines(experiment_id: str, base: str = f"http://127.0.0.1:{UI_PORT}") -> list[str]:
    """The two links of a sweep, as `slimsweep ui` and `slimsweep pareto` print them."""
    return [
        f"  trials: {view_url(experiment_id, RUNS_VIEW, base)}",
        f"  front:  {view_url(experiment_id, FRONT_VIEW, base)}",
    ]
