"""The token document, from the one place it is defined: ``functions/tokens``.

The Lambda functions ship ``functions/`` as their asset; the CLI reads the same code through
:mod:`originlock._tokens` (from the installed package's bundle, or from the checkout), so the
format and the fingerprint (and the filter that keeps botocore's DEBUG body logs out) are
never written twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # The same files, as mypy finds them (mypy_path = "functions").
    from tokens.document import CorruptDocumentError, TokenDocument, fingerprint, generate_token
    from tokens.edge import key_id, sign
    from tokens.edge import parse as parse_token
    from tokens.store import silence_botocore_body_logs
else:
    from originlock._tokens.document import (
        CorruptDocumentError,
        TokenDocument,
        fingerprint,
        generate_token,
    )
    from originlock._tokens.edge import key_id, sign
    from originlock._tokens.edge import parse as parse_token
    from originlock._tokens.store import silence_botocore_body_logs

__all__ = [
    "CorruptDocumentError",
    "TokenDocument",
    "fingerprint",
    "generate_token",
    "key_id",
    "parse_token",
    "sign",
    "silence_botocore_body_logs",
]
