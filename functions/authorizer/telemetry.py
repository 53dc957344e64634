"""Metrics and logs for the authorizer, kept off the hot path.

Decisions are counted in memory and flushed as one EMF document (Powertools
Metrics, namespace ``originlock``) at most once per flush interval, so an allowed
request costs a dictionary increment rather than a JSON document on stdout.
Powertools itself is imported on the first flush or the first log line, not at
cold start. Counts of an instance that is shut down before its next flush are
lost (at most one interval's worth): a trade-off recorded in docs/decisions.md.

Nothing here ever receives a token value: only slot names, reasons and codes.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

NAMESPACE = "originlock"
SERVICE = "authorizer"


class Telemetry:
    def __init__(self, flush_interval: float, deny_log_interval: float) -> None:
        self.flush_interval = flush_interval
        self.deny_log_interval = deny_log_interval
        self.counts: Counter[str] = Counter()
        self._last_flush: float | None = None
        self._last_deny_log: float | None = None
        self._suppressed_denials = 0
        self._last_undecided_log: float | None = None
        self._suppressed_undecided = 0
        self._logger: Any = None
        self._metrics: Any = None

    # Powertools is loaded lazily: see the module docstring.
    @property
    def logger(self) -> Any:
        if self._logger is None:
            from aws_lambda_powertools import Logger

            self._logger = Logger(service=SERVICE)
        return self._logger

    def count(self, name: str) -> None:
        self.counts[name] += 1

    def denied(self, reason: str, now: float) -> None:
        self.counts["Denied"] += 1
        if self._last_deny_log is not None and now - self._last_deny_log < self.deny_log_interval:
            self._suppressed_denials += 1
            return
        self.logger.warning(
            "request denied", reason=reason, suppressed_since_last=self._suppressed_denials
        )
        self._last_deny_log = now
        self._suppressed_denials = 0

    def undecided(self, reason: str, now: float) -> None:
        """A request this instance could not decide with certainty: the invocation fails (500,
        not cached). Logged at the denial rate limit; the misconfigured case was logged once
        when the settings were read."""
        self.counts["Undecided"] += 1
        if reason != "uncertain":
            return
        if self._last_undecided_log is not None and (
            now - self._last_undecided_log < self.deny_log_interval
        ):
            self._suppressed_undecided += 1
            return
        self.logger.warning(
            "no certain decision: invocation failed (API Gateway answers 500, caches nothing)",
            suppressed_since_last=self._suppressed_undecided,
        )
        self._last_undecided_log = now
        self._suppressed_undecided = 0

    def store_error(self, code: str) -> None:
        self.counts["StoreErrors"] += 1
        self.logger.error("token parameter read failed", error_code=code)

    def settings_error(self, message: str) -> None:
        self.counts["SettingsErrors"] += 1
        self.logger.error("authorizer misconfigured", error=message)

    def unexpected(self, exc: BaseException) -> None:
        self.counts["AuthorizerErrors"] += 1
        # The type only: an exception's text could in theory carry request data.
        self.logger.error("authorizer error", error_type=type(exc).__name__)

    def maybe_flush(self, now: float) -> None:
        if self._last_flush is None:
            self._last_flush = now
            return
        if now - self._last_flush >= self.flush_interval:
            # Before the flush: a flush that raises is tried again an interval later, not on
            # every request (the counts are kept for it).
            self._last_flush = now
            self.flush()

    def flush(self) -> None:
        if not self.counts:
            return
        from aws_lambda_powertools import Metrics
        from aws_lambda_powertools.metrics import MetricUnit

        if self._metrics is None:
            self._metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
        for name, value in sorted(self.counts.items()):
            self._metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        self._metrics.flush_metrics()
        self.counts.clear()
