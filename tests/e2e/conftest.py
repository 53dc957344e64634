"""One sandbox for the e2e package: started once (moto server mode, edges, API Gateway),
stopped after the last e2e test, so no other package runs with its environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from originlock.sandbox import Sandbox, SandboxTimings
from originlock.target import SANDBOX_FILE_ENV

# Shorter than the demo's: the e2e tests run two rotations and two revokes more than it does.
E2E_TIMINGS = SandboxTimings(
    deploy_window=(0.3, 1.2),
    authorizer_ttl=1.0,
    token_cache_max_age=1.5,
    token_refresh_interval=0.25,
    margin=0.25,
    drain=1.0,
    deploy_timeout=30.0,
)


@pytest.fixture(scope="package")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    state_file = Path(tmp_path_factory.mktemp("sandbox")) / "sandbox.json"
    saved = os.environ.get(SANDBOX_FILE_ENV)
    os.environ[SANDBOX_FILE_ENV] = str(state_file)
    try:
        with Sandbox(edges=3, timings=E2E_TIMINGS, seed=11, state_file=state_file) as sb:
            yield sb
    finally:
        if saved is None:
            os.environ.pop(SANDBOX_FILE_ENV, None)
        else:
            os.environ[SANDBOX_FILE_ENV] = saved
