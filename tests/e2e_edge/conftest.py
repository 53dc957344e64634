"""One edge-signed sandbox for this package (docs/edge-signed.md): started once, stopped after
the last test here. A package of its own: two sandboxes cannot share a process, and the e2e
package's header-mode sandbox lives until that package ends."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from originlock.sandbox import Sandbox
from originlock.target import SANDBOX_FILE_ENV
from tests.e2e.conftest import E2E_TIMINGS

# The e2e package's timings, with a KeyValueStore whose writes reach each edge within 1.2 s
# and the shortest token window the function allows.
EDGE_TIMINGS = dataclasses.replace(
    E2E_TIMINGS, kvs_propagation=(0.3, 1.2), edge_propagation_wait=1.5, edge_window=10
)


@pytest.fixture(scope="package")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    state_file = Path(tmp_path_factory.mktemp("sandbox")) / "sandbox.json"
    saved = os.environ.get(SANDBOX_FILE_ENV)
    os.environ[SANDBOX_FILE_ENV] = str(state_file)
    try:
        with Sandbox(
            edges=3,
            timings=EDGE_TIMINGS,
            seed=17,
            state_file=state_file,
            lock_mode="edge-signed",
        ) as sb:
            yield sb
    finally:
        if saved is None:
            os.environ.pop(SANDBOX_FILE_ENV, None)
        else:
            os.environ[SANDBOX_FILE_ENV] = saved
