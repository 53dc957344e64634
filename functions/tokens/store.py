"""Adapters that read the token parameter. boto3/botocore and urllib load lazily.

Two readers, one interface (``read() -> str``):

* :class:`ExtensionReader` asks the AWS Parameters and Secrets Lambda Extension on
  ``localhost:2773``: no SDK import, no client build at cold start.
* :class:`SdkReader` calls ``ssm:GetParameter`` through botocore: the fallback
  outside Lambda (tests, the sandbox) or where the extension layer is absent.

Both raise :class:`StoreError` with an error code and never the value.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Protocol

# botocore logs every request and response body at DEBUG: for GetParameter the
# response body is the decrypted secret, for PutParameter the request body is. A
# function whose root logger is set to DEBUG (Lambda's application log level, a
# developer's basicConfig) would print the token. These loggers keep their other
# records; only DEBUG ones, which carry the bodies, are dropped.
_BODY_LOGGERS = ("botocore.endpoint", "botocore.parsers")


class _DropDebugRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


_DROP_DEBUG = _DropDebugRecords()


def silence_botocore_body_logs() -> None:
    """Drop botocore's DEBUG records, which carry request and response bodies.

    Call it before any SSM call that reads or writes a token value.
    """
    for name in _BODY_LOGGERS:
        logging.getLogger(name).addFilter(_DROP_DEBUG)  # addFilter skips a filter already there


class StoreError(Exception):
    """Reading or writing the parameter failed (throttled, unreachable, denied, missing)."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code


class ParameterReader(Protocol):
    def read(self) -> str: ...


class ExtensionReader:
    """Read through the Parameters and Secrets Lambda Extension (a localhost HTTP call)."""

    def __init__(self, name: str, port: int = 2773, timeout: float = 1.0) -> None:
        from urllib.parse import quote

        self.url = (
            f"http://localhost:{port}/systemsmanager/parameters/get"
            f"?name={quote(name, safe='')}&withDecryption=true"
        )
        self.timeout = timeout

    def read(self) -> str:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(  # noqa: S310 - fixed http://localhost URL
            self.url,
            headers={"X-Aws-Parameters-Secrets-Token": os.environ.get("AWS_SESSION_TOKEN", "")},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise StoreError(f"Extension{exc.code}", "extension refused the read") from None
        except (OSError, ValueError) as exc:
            raise StoreError("ExtensionUnavailable", type(exc).__name__) from None
        try:
            value = body["Parameter"]["Value"]
        except (KeyError, TypeError):
            raise StoreError("ExtensionBadResponse", "no Parameter.Value") from None
        if not isinstance(value, str):
            raise StoreError("ExtensionBadResponse", "value is not a string")
        return value


def ssm_client(**kwargs: Any) -> Any:
    """A botocore SSM client with short timeouts and standard retries."""
    import botocore.session
    from botocore.config import Config

    silence_botocore_body_logs()
    config = Config(
        connect_timeout=2,
        read_timeout=3,
        retries={"mode": "standard", "max_attempts": 2},
    )
    return botocore.session.get_session().create_client("ssm", config=config, **kwargs)


class SdkReader:
    """Read with ``ssm:GetParameter(WithDecryption=True)``; the client is built on first use."""

    def __init__(self, name: str, client: Any = None) -> None:
        self.name = name
        self._client = client

    def read(self) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        # Also for a client passed in (tests, the sandbox), not only one built here.
        silence_botocore_body_logs()
        try:
            if self._client is None:
                self._client = ssm_client()
            response = self._client.get_parameter(Name=self.name, WithDecryption=True)
        except ClientError as exc:
            raise StoreError(exc.response.get("Error", {}).get("Code", "ClientError")) from None
        except BotoCoreError as exc:
            raise StoreError(type(exc).__name__) from None
        return str(response["Parameter"]["Value"])


def default_reader(name: str, source: str, extension_port: int) -> ParameterReader:
    if source == "extension":
        return ExtensionReader(name, port=extension_port)
    return SdkReader(name)
