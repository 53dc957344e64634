"""A document nested deeper than Python's recursion limit is corrupt, not a crash.

``json.loads`` raises ``RecursionError`` (not ``ValueError``) on such a value, and SSM's 8 KB
hold enough brackets for it. The CLI already reports it as "does not hold a token document"
(``test_cli_moto.py``); this is the parser itself, which the functions share
(``functions/tokens/document.py``: ``except (ValueError, RecursionError)`` around its
``json.loads``).
"""

from __future__ import annotations

import pytest

from tokens.document import CorruptDocumentError, TokenDocument


@pytest.mark.parametrize(
    "value",
    [
        '{"format": 1, "current": ' + "[" * 4000 + "]" * 4000 + "}",
        '{"format": 1, "current": ' + '{"a":' * 1200 + "1" + "}" * 1201,
        '{"current": ' + "[" * 100_000,
    ],
    ids=["nested-arrays", "nested-objects", "unclosed"],
)
def test_token_document_nested_too_deeply_is_corrupt(value: str) -> None:
    with pytest.raises(CorruptDocumentError) as raised:
        TokenDocument.parse(value)

    assert "[[" not in str(raised.value)  # the message never quotes the value
