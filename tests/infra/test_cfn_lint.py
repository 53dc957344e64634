"""cfn-lint: no error in any synthesized template."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.conftest import SCANNED, Synth

pytestmark = pytest.mark.infra

CFN_LINT = Path(sys.executable).with_name("cfn-lint")
# W3005 (DependsOn already implied by a GetAtt): CDK makes a function depend on its
# role's policy and role explicitly, so the policy exists before the first call.
ACCEPTED_WARNINGS = {"W3005"}


# The main stack, plus the web ACL's stack unless WAF is off (never in attach mode); the
# user's two stacks of the parts alone.
TEMPLATES = {"synth": 2, "variant": 1, "defaults": 2, "attach": 1, "edge": 2, "parts": 2}


@pytest.mark.parametrize("which", SCANNED)
def test_every_template_lints_clean(which: str, request: pytest.FixtureRequest) -> None:
    synthesized: Synth = request.getfixturevalue(which)
    templates = synthesized.templates()
    assert len(templates) == TEMPLATES[which]
    completed = subprocess.run(
        [str(CFN_LINT), "--format", "json", *map(str, templates)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    findings = json.loads(completed.stdout or "[]")
    errors = [f for f in findings if f["Level"] == "Error"]
    assert errors == []
    assert {f["Rule"]["Id"] for f in findings} <= ACCEPTED_WARNINGS
    # Exit status bits: 2 errors, 4 warnings, 8 informational.
    assert completed.returncode & 2 == 0, completed.stderr
