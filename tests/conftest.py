"""Suite-wide settings."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Under xdist (--dist loadgroup), tests that share an expensive fixture run on one
    # worker: the CDK synthesis of tests/infra and the sandboxes of tests/e2e and
    # tests/e2e_edge (edge-signed mode) are built once each.
    # An e2e test that starts its own sandbox (in a child process) may run anywhere.
    for item in items:
        path = str(item.path)
        if "/tests/infra/" in path:
            item.add_marker(pytest.mark.xdist_group("infra"))
        elif "/tests/e2e/" in path and "sandbox" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("e2e"))
        elif "/tests/e2e_edge/" in path:
            item.add_marker(pytest.mark.xdist_group("e2e_edge"))
