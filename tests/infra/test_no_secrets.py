"""Invariant 2 at synth time: no token value in any template or anywhere in the output.

The token parameter was seeded (in moto) with a known value before synthesis: if
the app ever read it, it would be in the output and this scan would find it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from originlock.constants import HEADER_VALUE_PLACEHOLDER
from tests.infra.conftest import CONFIGURATIONS, SCANNED, Synth

pytestmark = pytest.mark.infra

TOKEN_LIKE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def every_file(outdir: Path) -> list[Path]:
    return [path for path in outdir.rglob("*") if path.is_file()]


@pytest.mark.parametrize("which", SCANNED)
def test_seeded_token_appears_nowhere_in_the_output(
    which: str, request: pytest.FixtureRequest
) -> None:
    synthesized: Synth = request.getfixturevalue(which)
    needle = synthesized.seeded_token.encode()
    files = every_file(synthesized.outdir)
    assert len(files) > 5  # templates, manifests, assets
    for path in files:
        assert needle not in path.read_bytes(), path


def header_values(value: Any) -> list[Any]:
    """Every value under a HeaderValue/headerValue key, anywhere in a template."""
    found: list[Any] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key.lower() == "headervalue":
                found.append(item)
            found += header_values(item)
    elif isinstance(value, list):
        for item in value:
            found += header_values(item)
    return found


@pytest.mark.parametrize("which", CONFIGURATIONS)
def test_no_header_value_is_a_literal(which: str, request: pytest.FixtureRequest) -> None:
    synthesized: Synth = request.getfixturevalue(which)
    values = [
        value
        for path in synthesized.templates()
        for value in header_values(json.loads(path.read_text()))
    ]
    assert values, "expected the distribution's origin header"
    for value in values:
        if isinstance(value, str):
            # Only the drift guard's placeholder, never anything token-like.
            assert value == HEADER_VALUE_PLACEHOLDER
            assert not TOKEN_LIKE.match(value)
        else:
            assert set(value) == {"Fn::GetAtt"} and value["Fn::GetAtt"][1] == "Value"


def token_like(text: str, logical_ids: set[str]) -> bool:
    """43 URL-safe characters in both cases, and not a name the template defines.

    A random token lacks upper or lower case with odds of about 4e-10; bucket names
    (lower case) and logical ids are what else could have that length.
    """
    return (
        TOKEN_LIKE.match(text) is not None
        and text not in logical_ids
        and re.search("[A-Z]", text) is not None
        and re.search("[a-z]", text) is not None
    )


def test_token_like_heuristic() -> None:
    from tokens.document import generate_token

    assert token_like(generate_token(), set())
    assert not token_like("cdk-hnb659fds-assets-111111111111-eu-west-1", set())


@pytest.mark.parametrize("which", SCANNED)
def test_no_token_like_literal_in_any_template(which: str, request: pytest.FixtureRequest) -> None:
    synthesized: Synth = request.getfixturevalue(which)

    def strings(value: Any) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, dict):
            return [s for key, item in value.items() for s in (key, *strings(item))]
        if isinstance(value, list):
            return [s for item in value for s in strings(item)]
        return []

    for path in synthesized.templates():
        template = json.loads(path.read_text())
        logical_ids = set(template.get("Resources", {})) | set(template.get("Outputs", {}))
        for text in strings(template):
            assert not token_like(text, logical_ids), (path.name, text)
