"""The harness's in-process Lambda runtime, as the sandbox runs it.

Two additions: each invocation's stdout is kept apart (it is the function's CloudWatch Logs
on AWS, not the operator's terminal), and the invoking thread can ask whether its last
invocation was a cold start (a new instance), so latencies are reported warm and cold apart.
"""

from __future__ import annotations

import threading
from typing import Any

from originlock.sandbox.harness import InProcessLambda
from originlock.sandbox.output import ThreadOutput


class SandboxLambda(InProcessLambda):
    def __init__(self, base_env: dict[str, str], output: ThreadOutput) -> None:
        super().__init__(base_env=base_env)
        self.output = output
        self._local = threading.local()

    def _checkout(self, fn: Any) -> Any:
        pool, instance = super()._checkout(fn)
        self._local.cold = instance.invocations == 0
        return pool, instance

    def run(self, fn: Any, event: Any) -> tuple[Any, bool]:
        with self.output.capturing():
            return super().run(fn, event)

    def prewarm(self, fn: Any, count: int, event: Any) -> int:
        with self.output.capturing():
            return super().prewarm(fn, count, event)

    def last_was_cold(self) -> bool:
        """Whether this thread's last invocation started a new instance."""
        return bool(getattr(self._local, "cold", False))
