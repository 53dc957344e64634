"""What the benchmark scenarios share: where results go, and small helpers."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def ms(seconds: float | None, digits: int = 2) -> float | None:
    return None if seconds is None else round(seconds * 1000, digits)


def write_result(name: str, figures: dict[str, Any]) -> str:
    """Write *figures* to ``bench/results/<name>.json``; return the JSON line."""
    RESULTS.mkdir(exist_ok=True)
    line = json.dumps(figures, sort_keys=True, default=str)
    (RESULTS / f"{name}.json").write_text(line + "\n")
    return line


def machine() -> dict[str, str]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": str(os.cpu_count()),
        "load_average_1m": f"{load[0]:.2f}",
    }
