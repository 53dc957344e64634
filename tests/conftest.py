"""Suite-wide settings."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Under xdist (--dist loadgroup), tests that share an expensive session fixture run on one
    # worker: the CDK synthesis of tests/infra and the sandbox of tests/e2e are built once.
    for item in items:
        path = str(item.path)
        for group in ("infra", "e2e"):
            if f"/tests/{group}/" in path:
                item.add_marker(pytest.mark.xdist_group(group))
