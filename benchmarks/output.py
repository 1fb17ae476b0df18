"""Write a run's files: results.json, report.md and the charts under img/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.charts import draw_charts
from benchmarks.report import render

RESULTS = "results.json"
REPORT = "report.md"
IMAGES = "img"


def write_outputs(results: dict[str, Any], out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULTS).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    charts = draw_charts(results, out / IMAGES)
    (out / REPORT).write_text(render(results, IMAGES), encoding="utf-8")
    return {"results": out / RESULTS, "report": out / REPORT, **charts}
