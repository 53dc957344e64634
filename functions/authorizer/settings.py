"""Authorizer settings, parsed once per instance from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_HEADER = "x-cf-api-gateway-token"


class SettingsError(Exception):
    """The function's environment is incomplete or malformed."""


@dataclass(frozen=True)
class AuthorizerSettings:
    parameter_name: str
    header_name: str = DEFAULT_HEADER
    # An instance re-reads the document at least this often while it serves traffic.
    cache_max_age: float = 60.0
    # After a failed read, the next attempt comes no sooner than this (doubling with each
    # further failure, up to the max age, for an instance that still has a copy).
    refresh_min_interval: float = 1.0
    # Past this age of the last good read, the instance denies everything.
    max_staleness: float = 900.0
    token_source: str = "sdk"  # noqa: S105 - a source name, not a secret
    extension_port: int = 2773
    metrics_flush_interval: float = 60.0
    # Denial log lines per instance are limited to one per this many seconds.
    deny_log_interval: float = 1.0

    @property
    def read_timeout(self) -> float:
        """How long one read may take: the reader's own timeouts (tokens/store.py)."""
        return 1.0 if self.token_source == "extension" else 3.0  # noqa: S105 - a source name

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AuthorizerSettings:
        env = os.environ if env is None else env
        name = env.get("SSM_PARAMETER_NAME", "").strip()
        if not name:
            raise SettingsError("SSM_PARAMETER_NAME is not set")
        source = env.get("TOKEN_SOURCE", "sdk")
        if source not in ("sdk", "extension"):
            raise SettingsError("TOKEN_SOURCE must be 'sdk' or 'extension'")
        try:
            settings = cls(
                parameter_name=name,
                header_name=env.get("ORIGIN_HEADER_NAME", DEFAULT_HEADER).strip().lower(),
                cache_max_age=float(env.get("TOKEN_CACHE_MAX_AGE_SECONDS", cls.cache_max_age)),
                refresh_min_interval=float(
                    env.get("TOKEN_REFRESH_MIN_INTERVAL_SECONDS", cls.refresh_min_interval)
                ),
                max_staleness=float(env.get("TOKEN_MAX_STALENESS_SECONDS", cls.max_staleness)),
                token_source=source,
                extension_port=int(
                    env.get("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", cls.extension_port)
                ),
                metrics_flush_interval=float(
                    env.get("METRICS_FLUSH_INTERVAL_SECONDS", cls.metrics_flush_interval)
                ),
            )
        except ValueError as exc:
            raise SettingsError(f"malformed number in authorizer settings: {exc}") from None
        if not settings.header_name:
            raise SettingsError("ORIGIN_HEADER_NAME is empty")
        if not 0 < settings.refresh_min_interval <= settings.cache_max_age:
            raise SettingsError("need 0 < TOKEN_REFRESH_MIN_INTERVAL_SECONDS <= max age")
        if settings.max_staleness < settings.cache_max_age:
            raise SettingsError("TOKEN_MAX_STALENESS_SECONDS must be >= the cache max age")
        return settings
