"""The CloudFront Function of edge-signed mode, and the one way to fill in its placeholders.

``viewer_request.js`` is the function's source (runtime ``cloudfront-js-2.0``, viewer-request
event). The CDK construct and the sandbox both call :func:`render`, so AWS and the sandbox run
the same code. The source holds two placeholders and never a key: the key is read from the
KeyValueStore at each request.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import ModuleType

SOURCE = Path(__file__).with_name("viewer_request.js")
RUNTIME = "cloudfront-js-2.0"
EVENT_TYPE = "viewer-request"
HEADER_PLACEHOLDER = "__HEADER_NAME__"
WINDOW_PLACEHOLDER = "__WINDOW_SECONDS__"
# CloudFront's quota on a function's code: 10 KB (docs/edge-signed.md cites it).
MAX_CODE_BYTES = 10 * 1024
# An HTTP token (RFC 9110) in lowercase, the event's case, less the quote that would end the
# JavaScript string it is written into.
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&*+.^_`|~-]{1,128}")


def _edge_tokens() -> ModuleType:
    """``tokens.edge`` (the window's rules): by that name where ``functions/`` is on
    ``sys.path`` (the sandbox, the tests), else the same file as ``originlock._tokens.edge``:
    the CDK app and the construct library load this file by path, without ``functions/`` on
    ``sys.path``."""
    try:
        return importlib.import_module("tokens.edge")
    except ModuleNotFoundError:
        return importlib.import_module("originlock._tokens.edge")


class EdgeFunctionConfigError(ValueError):
    """The header name or the window cannot be written into the function."""


def render(header_name: str, window_seconds: int, source: str | None = None) -> str:
    """The function code with its placeholders filled in.

    Parameters
    ----------
    header_name:
        The origin header (any case; the code holds it in lowercase).
    window_seconds:
        The token window, a whole number of seconds (10-3600).
    source:
        The template; the shipped ``viewer_request.js`` when omitted.

    Raises
    ------
    EdgeFunctionConfigError
        If the header name is not an HTTP token, the window is out of range, the template lacks
        a placeholder, or the result exceeds CloudFront's 10 KB.
    """
    edge_tokens = _edge_tokens()
    name = header_name.lower() if isinstance(header_name, str) else ""
    if not _HEADER_NAME.fullmatch(name):
        raise EdgeFunctionConfigError("header name is not an HTTP token of 1-128 characters")
    try:
        edge_tokens.check_window_settings(window_seconds, 0)
    except edge_tokens.EdgeTokenError as exc:
        raise EdgeFunctionConfigError(str(exc)) from None
    template = SOURCE.read_text(encoding="utf-8") if source is None else source
    for placeholder in (HEADER_PLACEHOLDER, WINDOW_PLACEHOLDER):
        if f"'{placeholder}'" not in template:
            raise EdgeFunctionConfigError(f"function source lacks the {placeholder} placeholder")
    code = template.replace(f"'{HEADER_PLACEHOLDER}'", f"'{name}'").replace(
        f"'{WINDOW_PLACEHOLDER}'", f"'{window_seconds}'"
    )
    if len(code.encode("utf-8")) > MAX_CODE_BYTES:
        raise EdgeFunctionConfigError(f"function code exceeds CloudFront's {MAX_CODE_BYTES} bytes")
    return code
