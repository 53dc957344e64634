"""A document nested deeper than Python's recursion limit is corrupt, not a crash.

``json.loads`` raises ``RecursionError`` (not ``ValueError``) on such a value, and SSM's 8 KB
hold enough brackets for it. The CLI already reports it as "does not hold a token document"
(``test_cli_moto.py``); this is the parser itself, which the functions share
(``functions/tokens/document.py``: ``except (ValueError, RecursionError)`` around its
``json.loads``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def test_cli_reads_an_edge_signed_document_without_the_functions_on_its_path(
    tmp_path: Path,
) -> None:
    # Given the CLI's process as a user starts it: no functions/ folder on sys.path (the
    # token code is originlock._tokens), and an edge-signed document, whose parse and summary
    # need the token module's edge-signed half
    from tokens.document import Signing, generate_token
    from tokens.edge import key_id

    key = generate_token()
    document = TokenDocument(current=key, mode="edge-signed", signing=Signing("E1", 60, 1))
    code = (
        "import sys, json\n"
        "from originlock.document import TokenDocument\n"
        "assert not any(p.endswith('functions') for p in sys.path), sys.path\n"
        "summary = TokenDocument.parse(sys.stdin.read()).summary()\n"
        "print(json.dumps([summary['mode'], summary['key_ids']]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    # When it reads the document
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=document.to_json(),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
        check=False,
    )

    # Then it shows the mode and the key id (and never the key)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == ["edge-signed", {"current": key_id(key)}]
    assert key not in done.stdout + done.stderr
