"""Checkov on the synthesized templates: no finding left unacknowledged, no stale acknowledgment.

Checkov runs from its own environment (``make checkov-env``: ``.tools/checkov``, installed
from the hashed lock ``tools/checkov-requirements.txt``), which the fixture bootstraps on a
fresh clone. Each configuration's templates are scanned twice in one checkov run: as
synthesized, where every finding must be skipped by a ``Metadata.checkov.skip`` entry with
its reason, and with those entries removed, where the findings must be exactly the skips
(a skip that matches no finding would hide a future one unnoticed).
"""

from __future__ import annotations

import fcntl
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from infra.constants import ROOT
from tests.infra.conftest import SCANNED, Synth

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("checkov")]

CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
# (template file name, "Type.LogicalId", check id)
Finding = tuple[str, str, str]


@pytest.fixture(scope="session")
def checkov() -> Path:
    """Checkov's own environment, made or brought up to date by the Makefile (once at a time)."""
    lock = ROOT / ".tools" / ".checkov-env.lock"
    lock.parent.mkdir(exist_ok=True)
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        subprocess.run(
            ["make", "--no-print-directory", "-s", "checkov-env"],
            cwd=ROOT,
            check=True,
            timeout=600,
        )
    assert CHECKOV.exists()
    return CHECKOV


def declared_skips(templates: list[Path]) -> dict[Finding, str]:
    """Every ``Metadata.checkov.skip`` entry of *templates*, with its comment."""
    skips: dict[Finding, str] = {}
    for path in templates:
        for logical_id, resource in json.loads(path.read_text())["Resources"].items():
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                finding = (path.name, f"{resource['Type']}.{logical_id}", skip["id"])
                assert finding not in skips, finding
                skips[finding] = skip["comment"]
    return skips


def stripped_copies(templates: list[Path], directory: Path) -> list[Path]:
    """*templates* without their checkov skips."""
    directory.mkdir()
    copies = []
    for path in templates:
        template = json.loads(path.read_text())
        for resource in template["Resources"].values():
            resource.get("Metadata", {}).pop("checkov", None)
        copy = directory / path.name
        copy.write_text(json.dumps(template))
        copies.append(copy)
    return copies


def scan(checkov: Path, files: list[Path]) -> list[dict[str, Any]]:
    completed = subprocess.run(
        [
            str(checkov),
            "--framework",
            "cloudformation",
            "--output",
            "json",
            "--compact",
            # Offline: no guidelines or policies from the vendor's service.
            "--skip-download",
            *(argument for path in files for argument in ("--file", str(path))),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    # Exit status 1 means failed checks: the assertions below tell which.
    assert completed.returncode in (0, 1), completed.stderr
    report = json.loads(completed.stdout)
    reports = report if isinstance(report, list) else [report]
    assert [r["check_type"] for r in reports] == ["cloudformation"]
    results: dict[str, Any] = reports[0]["results"]
    assert results["parsing_errors"] == []
    return [
        {**result, "outcome": outcome}
        for outcome in ("failed_checks", "skipped_checks")
        for result in results[outcome]
    ]


def findings(results: list[dict[str, Any]], directory: Path, outcome: str) -> set[Finding]:
    return {
        (Path(r["file_abs_path"]).name, r["resource"], r["check_id"])
        for r in results
        if r["outcome"] == outcome and Path(r["file_abs_path"]).parent == directory
    }


@pytest.mark.parametrize("which", SCANNED)
def test_every_checkov_finding_is_acknowledged_and_every_acknowledgment_is_used(
    which: str, request: pytest.FixtureRequest, checkov: Path, tmp_path: Path
) -> None:
    # Given the templates as synthesized, and the same without their checkov skips
    synthesized: Synth = request.getfixturevalue(which)
    templates = synthesized.templates()
    skips = declared_skips(templates)
    copies = stripped_copies(templates, tmp_path / "stripped")
    # When checkov scans both
    results = scan(checkov, [*templates, *copies])
    # Then nothing fails as synthesized: every finding is skipped, with its reason
    assert findings(results, synthesized.outdir, "failed_checks") == set()
    assert findings(results, synthesized.outdir, "skipped_checks") == set(skips)
    for finding, comment in skips.items():
        assert len(comment) >= 40, (finding, comment)
    # And each skip answers a finding that is there without it
    assert findings(results, tmp_path / "stripped", "failed_checks") == set(skips)
