"""Adapters that read the token parameter. botocore and ``socket`` load lazily.

Two readers, one interface (``read() -> str``):

* :class:`ExtensionReader` asks the AWS Parameters and Secrets Lambda Extension on
  ``localhost:2773``: no SDK import, no client build at cold start.
* :class:`SdkReader` calls ``ssm:GetParameter`` through botocore: the fallback
  outside Lambda (tests, the sandbox) or where the extension layer is absent.

Both raise :class:`StoreError` with an error code and never the value.
"""

from __future__ import annotations

import json
import os
from typing import Any, Protocol

# botocore logs every request and response body at DEBUG: for GetParameter the
# response body is the decrypted secret, for PutParameter the request body is. A
# function whose root logger is set to DEBUG (Lambda's application log level, a
# developer's basicConfig) would print the token. These loggers keep their other
# records; only DEBUG ones, which carry the bodies, are dropped.
_BODY_LOGGERS = ("botocore.endpoint", "botocore.parsers")
_DEBUG = 10  # logging.DEBUG; logging itself is imported only on the SDK path


def _above_debug(record: Any) -> bool:
    return bool(record.levelno > _DEBUG)


def silence_botocore_body_logs() -> None:
    """Drop botocore's DEBUG records, which carry request and response bodies.

    Call it before any SSM call that reads or writes a token value.
    """
    import logging

    for name in _BODY_LOGGERS:
        logging.getLogger(name).addFilter(_above_debug)  # addFilter skips a filter already there


class StoreError(Exception):
    """Reading or writing the parameter failed (throttled, unreachable, denied, missing)."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code


class ParameterReader(Protocol):
    def read(self) -> str: ...


# The extension's answer is a few kilobytes of JSON; anything far larger is not it.
_MAX_RESPONSE_BYTES = 1 << 20


class ExtensionReader:
    """Read through the Parameters and Secrets Lambda Extension (a localhost HTTP call).

    ``http.client`` (the standard library's HTTP/1.1 client: Content-Length, chunked and
    connection-close answers) rather than ``urllib.request``: it skips ``urllib``'s proxy
    handling (the call must never go through an ``HTTP_PROXY``) and a few milliseconds of
    import. The session token is read from *environ* at each call.
    """

    def __init__(
        self,
        name: str,
        port: int = 2773,
        timeout: float = 1.0,
        environ: Any = None,
    ) -> None:
        from urllib.parse import quote

        self.host = "localhost"
        self.port = port
        self.path = (
            f"/systemsmanager/parameters/get?name={quote(name, safe='')}&withDecryption=true"
        )
        self.url = f"http://{self.host}:{port}{self.path}"
        self.timeout = timeout
        self.environ = os.environ if environ is None else environ

    def read(self) -> str:
        import http.client

        token = self.environ.get("AWS_SESSION_TOKEN", "")
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            connection.request("GET", self.path, headers={"X-Aws-Parameters-Secrets-Token": token})
            response = connection.getresponse()
            status = response.status
            # Only a 200's body is used: an error answer's body is never waited for.
            payload = response.read(_MAX_RESPONSE_BYTES + 1) if status == 200 else b""
        except (http.client.HTTPException, ValueError):
            raise StoreError("ExtensionBadResponse", "not an HTTP response") from None
        except OSError as exc:  # refused, reset, timed out
            raise StoreError("ExtensionUnavailable", type(exc).__name__) from None
        finally:
            connection.close()
        if status != 200:
            raise StoreError(f"Extension{status}", "extension refused the read")
        if len(payload) > _MAX_RESPONSE_BYTES:
            raise StoreError("ExtensionBadResponse", "response too large")
        try:
            value = json.loads(payload)["Parameter"]["Value"]
        except (ValueError, KeyError, TypeError):
            raise StoreError("ExtensionBadResponse", "no Parameter.Value") from None
        if not isinstance(value, str):
            raise StoreError("ExtensionBadResponse", "value is not a string")
        return value


def ssm_client(**kwargs: Any) -> Any:
    """A botocore SSM client with short timeouts and a single attempt (no SDK retry)."""
    import botocore.session
    from botocore.config import Config

    silence_botocore_body_logs()
    config = Config(
        # One attempt, at most ~3 s: a failed read is retried by the cache at the next
        # refresh interval, and the authorizer must answer well within its Lambda timeout.
        connect_timeout=1,
        read_timeout=2,
        retries={"mode": "standard", "max_attempts": 1},
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


def default_reader(
    name: str, source: str, extension_port: int, environ: Any = None
) -> ParameterReader:
    if source == "extension":
        return ExtensionReader(name, port=extension_port, environ=environ)
    return SdkReader(name)
