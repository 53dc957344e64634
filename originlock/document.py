"""The token document, from the one place it is defined: ``functions/tokens``.

The Lambda functions ship ``functions/`` as their asset; the CLI reads the same code from the
checkout it is installed from (``uv sync`` installs originlock in editable mode), so the
format and the fingerprint (and the filter that keeps botocore's DEBUG body logs out) are
never written twice.
"""

from __future__ import annotations

import sys
from pathlib import Path

FUNCTIONS_DIR = Path(__file__).resolve().parents[1] / "functions"

if FUNCTIONS_DIR.is_dir() and str(FUNCTIONS_DIR) not in sys.path:
    sys.path.insert(0, str(FUNCTIONS_DIR))

from tokens.document import CorruptDocumentError, TokenDocument, fingerprint  # noqa: E402
from tokens.edge import key_id, sign  # noqa: E402
from tokens.edge import parse as parse_token  # noqa: E402
from tokens.store import silence_botocore_body_logs  # noqa: E402

__all__ = [
    "CorruptDocumentError",
    "TokenDocument",
    "fingerprint",
    "key_id",
    "parse_token",
    "sign",
    "silence_botocore_body_logs",
]
