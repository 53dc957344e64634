"""The least-privilege table in docs/security.md (written by ``make rehearse``) lists exactly the
actions the app grants: a policy change without a new rehearsal run fails here, offline."""

from __future__ import annotations

import json
import re

import pytest
from aws_cdk import CfnElement

from infra.constants import ROOT
from rehearsal.least_privilege import (
    EDGE_TABLE,
    HEADER_TABLE,
    Grant,
    committed_table,
    grants,
    roles_differing,
)
from tests.infra.conftest import Synth, synthesize

pytestmark = pytest.mark.infra

ROW = re.compile(r"^\| `(?P<role>[^`]+)` \| `(?P<action>[^`]+)` \| `(?P<on>(?:[^`]|\\\|)+)` \|")


@pytest.fixture(scope="module")
def edge_defaults(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The default app in edge-signed mode (the rehearsal's stack name and region)."""
    return synthesize({"lockMode": "edge-signed"}, tmp_path_factory.mktemp("cdk-edge-defaults"))


def _grants(synth: Synth) -> list[Grant]:
    """The grants of a synthesis, as the rehearsal reads them from its template."""
    written = synth.outdir / f"{synth.main.stack_name}.template.json"
    template = json.loads(written.read_text())
    stack = synth.main
    paths = {
        str(stack.resolve(stack.get_logical_id(element))): element.node.path
        for element in stack.node.find_all()
        if isinstance(element, CfnElement)
    }
    return grants(template, paths)


def _rows(markers: tuple[str, str]) -> list[tuple[str, ...]]:
    text = committed_table(ROOT / "docs" / "security.md", markers)
    return [m.groups() for line in text.splitlines() if (m := ROW.match(line))]


def _expected(found: list[Grant]) -> list[tuple[str, ...]]:
    return [(g.role, g.action, g.resource.replace("|", "\\|")) for g in found]


def test_least_privilege_table_lists_every_granted_action(defaults: Synth) -> None:
    # Given the table the last rehearsal wrote
    rows = _rows(HEADER_TABLE)
    assert rows, "docs/security.md has no least-privilege table: run make rehearse"

    # Then its rows are the actions of the default synthesis, each once, in the same order
    assert rows == _expected(_grants(defaults)), (
        "the roles' policies changed: run make rehearse and commit the table"
    )


def test_edge_signed_table_lists_the_roles_it_grants_differently(
    defaults: Synth, edge_defaults: Synth
) -> None:
    # Given the edge-signed table the last rehearsal wrote
    rows = _rows(EDGE_TABLE)
    assert rows, "docs/security.md has no edge-signed least-privilege table: run make rehearse"

    # Then it proves the roles edge-signed mode grants differently, all their actions
    header, signed = _grants(defaults), _grants(edge_defaults)
    roles = roles_differing(header, signed)
    assert roles == ["EdgeSigning/Provider/Role", "Rotation/Rotate/Role"]
    assert rows == _expected([g for g in signed if g.role in roles]), (
        "the edge-signed roles' policies changed: run make rehearse and commit the table"
    )
