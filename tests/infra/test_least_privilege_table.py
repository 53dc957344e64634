"""The least-privilege table in docs/security.md (written by ``make rehearse``) lists exactly the
actions the app grants: a policy change without a new rehearsal run fails here, offline."""

from __future__ import annotations

import json
import re

import pytest
from aws_cdk import CfnElement

from infra.constants import ROOT
from rehearsal.least_privilege import committed_table, grants
from tests.infra.conftest import Synth

pytestmark = pytest.mark.infra

ROW = re.compile(r"^\| `(?P<role>[^`]+)` \| `(?P<action>[^`]+)` \| `(?P<on>(?:[^`]|\\\|)+)` \|")


def test_least_privilege_table_lists_every_granted_action(defaults: Synth) -> None:
    # Given the table the last rehearsal wrote
    text = committed_table(ROOT / "docs" / "security.md")
    rows = [m.groups() for line in text.splitlines() if (m := ROW.match(line))]
    assert rows, "docs/security.md has no least-privilege table: run make rehearse"

    # Then its rows are the actions of the default synthesis, each once, in the same order
    written = defaults.outdir / f"{defaults.main.stack_name}.template.json"
    template = json.loads(written.read_text())
    stack = defaults.main
    paths = {
        str(stack.resolve(stack.get_logical_id(element))): element.node.path
        for element in stack.node.find_all()
        if isinstance(element, CfnElement)
    }
    expected = [(g.role, g.action, g.resource.replace("|", "\\|")) for g in grants(template, paths)]
    assert rows == expected, "the roles' policies changed: run make rehearse and commit the table"
