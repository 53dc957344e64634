"""Suite-wide settings."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Under xdist (--dist loadgroup), tests that share an expensive fixture run on one
    # worker: the CDK synthesis of tests/infra and the sandbox of tests/e2e are built once.
    # An e2e test that starts its own sandbox (in a child process) may run anywhere.
    for item in items:
        path = str(item.path)
        if "/tests/infra/" in path:
            item.add_marker(pytest.mark.xdist_group("infra"))
        elif "/tests/e2e/" in path and "sandbox" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("e2e"))
