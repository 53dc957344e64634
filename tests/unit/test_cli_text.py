"""Text that came from AWS reaches the terminal as text: never read as rich markup or emoji
codes, its control characters escaped (an ANSI or OSC sequence in an execution's input must
not recolour, retitle or clear the operator's terminal). No AWS here: the renderers, fed the
shapes ``operations`` gives them; ``test_cli_moto.py`` runs the same through the commands.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console

from originlock.operations import Outcome, Step
from originlock.render import (
    StepPrinter,
    history_view,
    outcome_line,
    print_status,
    printable,
    status_rows,
    steps_table,
)

T0 = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
# What a terminal obeys: CSI (colour, clear screen), OSC (title, hyperlink) ended by BEL, the
# 8-bit CSI (C1), a newline that forges a line, a bidirectional override, and rich markup.
HOSTILE = {
    "csi": "\x1b[2J\x1b[31mred",
    "osc": "\x1b]0;pwned\x07",
    "osc8": "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",
    "c1": "\x9b31m",
    "newline": "alice\nerror: forged line",
    "bidi": "admin\u202egnp.exe",
    "markup": "[/oops] [bold red]x[/] [link=https://evil.example]y[/link] :warning:",
}
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


def console(width: int = 140, terminal: bool = False) -> Console:
    # As the CLI builds its consoles (cli._console): no markup, no emoji, no highlighting.
    return Console(
        file=io.StringIO(),
        width=width,
        force_terminal=terminal,
        color_system="truecolor" if terminal else None,
        highlight=False,
        markup=False,
        emoji=False,
    )


def output(c: Console) -> str:
    file = c.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def assert_shown_as_text(text: str) -> None:
    """Nothing a terminal would obey, and each hostile string visible in escaped form."""
    for raw in RAW:
        assert raw not in text, repr(raw)
    assert "\\x1b]0;pwned\\x07" in text
    assert "\\x1b[2J" in text and "\\x9b31m" in text and "\\u202e" in text
    assert "[/oops] [bold red]x[/]" in text and ":warning:" in text


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[31mred", "\\x1b[31mred"),
        ("a\nb\rc\td", "a\\nb\\rc\\td"),
        ("\x9b\x85\x7f\x00", "\\x9b\\x85\\x7f\\x00"),
        ("\u202e\u2066\u200b\ufeff", "\\u202e\\u2066\\u200b\\ufeff"),
        ("\u2028\u2029", "\\u2028\\u2029"),
        ("\U000e0001", "\\U000e0001"),
        ("Zoë · 東京 ✓ ∞", "Zoë · 東京 ✓ ∞"),  # text is text: only controls are escaped
        ("[/oops]", "[/oops]"),
        (None, ""),
        (42, "42"),
    ],
)
def test_printable_escapes_what_a_terminal_obeys_and_keeps_the_rest(
    raw: object, shown: str
) -> None:
    assert printable(raw) == shown


def hostile_outcome(status: str = "FAILED") -> Outcome:
    def step(name: str, kind: str, state: str, error: str | None = None) -> Step:
        return Step(name, kind, state, T0, T0 + timedelta(seconds=1), 0, error)

    steps = [
        step("Validate", "Task", "succeeded"),
        step(f"Stage {HOSTILE['csi']}", "Task", "failed", f"Bad{HOSTILE['osc']}"),
        step("Failed", "Fail", "failed"),
    ]
    return Outcome(
        "arn:aws:states:us-east-1:123456789012:execution:m:x",
        f"manual-rotate-{HOSTILE['c1']}{HOSTILE['bidi']}",
        status,
        "2026-11-25T17:00:00Z",
        "2026-11-25T17:00:03Z",
        steps=steps,
        failed_step=f"Stage {HOSTILE['csi']}",
        error=f"Bad{HOSTILE['osc']}",
        cause=f"{HOSTILE['markup']} {HOSTILE['newline']}",
    )


def test_outcome_line_of_a_hostile_failure_is_one_escaped_line() -> None:
    line = outcome_line(hostile_outcome())

    assert "\n" not in line
    assert "\\nerror: forged line" in line
    assert_shown_as_text(line + printable(HOSTILE["osc"]))


@pytest.mark.parametrize("terminal", [False, True])
def test_steps_table_shows_hostile_names_and_errors_as_text(terminal: bool) -> None:
    # Given a live table (--wait in a terminal) over an execution whose names carry sequences
    c = console(terminal=terminal)

    # When it is drawn (running, then failed)
    c.print(steps_table(hostile_outcome("RUNNING")))
    c.print(steps_table(hostile_outcome()))

    # Then the terminal gets rich's own styling at most, never the execution's sequences
    text = output(c)
    assert "\x1b]" not in text and "\x07" not in text and "\x9b" not in text
    assert "\x1b[2J" not in text and "\u202e" not in text
    assert "\\x1b[2J" in text and "\\x1b]0;pwned\\x07" in text and "\\x9b31m" in text


def test_step_printer_shows_hostile_names_and_errors_as_text() -> None:
    c = console()

    StepPrinter(c)(hostile_outcome())

    text = output(c)
    for raw in RAW:
        assert raw not in text
    assert "✗ Stage \\x1b[2J\\x1b[31mred" in text and "Bad\\x1b]0;pwned\\x07" in text


def execution(**fields: Any) -> dict[str, Any]:
    base = {
        "name": "manual-rotate-20261125T170000Z-1a2b",
        "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:m:x",
        "status": "FAILED",
        "started_at": "2026-11-25T17:00:00Z",
        "stopped_at": "2026-11-25T17:00:04Z",
        "seconds": 4.0,
        "mode": "rotate",
        "revoke": None,
        "trigger": "manual",
        "requested_by": "assumed-role/Admin/alice",
        "requested_by_verified": False,
        "reason": "manual rotation",
        "error": "CorruptTokenDocumentError",
        "cause": "CorruptTokenDocumentError: parameter value is not valid JSON",
    }
    return {**base, **fields}


def hostile_execution() -> dict[str, Any]:
    return execution(
        mode=HOSTILE["markup"],
        trigger=HOSTILE["bidi"],
        requested_by=f"{HOSTILE['osc']}{HOSTILE['newline']}",
        reason=HOSTILE["osc8"],
        error="States.TaskFailed",
        cause=f"{HOSTILE['csi']} {HOSTILE['c1']}",
    )


def test_history_view_shows_hostile_inputs_as_text() -> None:
    c = console(width=400)  # wide: no column folds, so each string is on one line

    c.print(history_view([hostile_execution()]))

    text = output(c)
    assert_shown_as_text(text)
    assert "error: forged line" not in text.splitlines()[0]


def test_history_view_labels_requested_by_as_given() -> None:
    c = console(width=400)

    c.print(history_view([execution()]))

    assert "Requested by (as given)" in output(c)


@pytest.mark.parametrize("width", [80, 120])
def test_history_view_shows_every_execution_name_whole(width: int) -> None:
    # Given the longest names originlock gives, and a long caller identity beside them
    names = [
        "manual-revoke-previous-20261125T175109Z-6a97",
        "schedule-rotate-20261125T030000Z-0f1e",
    ]
    runs = [
        execution(
            name=name,
            mode="revoke",
            revoke="previous",
            requested_by="assumed-role/AWSReservedSSO_AdministratorAccess_0123456789abcdef/alice",
        )
        for name in names
    ]
    c = console(width=width)

    c.print(history_view(runs))

    # Then each name is on one line, whole (the name is what `watch` takes)
    lines = output(c).splitlines()
    for name in names:
        assert any(name in line for line in lines), (name, output(c))


def test_status_shows_requested_by_as_given_and_escapes_hostile_inputs() -> None:
    data = {
        "target": "stack T (us-east-1)",
        "parameter": "/originlock/origin-token",
        "token": {
            "generation": 3,
            "updated_at": "2026-11-25T17:00:00Z",
            "current_since": "2026-11-25T17:00:00Z",
            "fingerprints": {"pending": None, "current": "d31efebe4449", "previous": None},
        },
        "distribution": None,
        "running_execution": None,
        "last_execution": hostile_execution(),
        "schedule": {"note": HOSTILE["osc"]},
    }
    c = console()

    print_status(c, data)

    text = output(c)
    assert_shown_as_text(text)
    assert "(as given by the caller, not verified)" in text
    [details] = [
        line for label, line in status_rows(data) if label == "" and "requested by" in line
    ]
    assert "requested by" in details


def test_status_names_plain_requested_by_with_its_label() -> None:
    rows = status_rows(
        {
            "target": "t",
            "parameter": "p",
            "token": {"generation": 1, "fingerprints": {"current": "abc"}},
            "distribution": None,
            "running_execution": None,
            "last_execution": execution(status="SUCCEEDED", error=None, cause=None),
            "schedule": {},
        }
    )

    assert any(
        "requested by assumed-role/Admin/alice (as given by the caller, not verified)" in line
        for _, line in rows
    )


def status_of(token: dict[str, Any], sends: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "target": "t",
        "parameter": "p",
        "token": {"generation": 3, **token},
        "distribution": {"id": "E1", "status": "Deployed", "header_name": "x-h", "sends": sends},
        "running_execution": None,
        "last_execution": None,
        "schedule": {},
    }


def test_status_shows_the_lock_mode_and_edge_signed_key_ids() -> None:
    edge = status_of(
        {
            "mode": "edge-signed",
            "fingerprints": {"pending": None, "current": "d31efebe4449"},
            "key_ids": {"current": "3316984f"},
        },
        [],
    )
    header = status_of({"fingerprints": {"current": "d31efebe4449"}}, [])

    edge_rows, header_rows = dict(status_rows(edge)), dict(status_rows(header))

    assert edge_rows["Mode"].startswith("edge-signed")
    assert edge_rows["  current"] == "d31efebe4449 · key id 3316984f"
    assert edge_rows["CloudFront"] == "E1 · Deployed · signs at the edge (no static origin header)"
    assert header_rows["Mode"].startswith("header")
    assert header_rows["  current"] == "d31efebe4449"
    assert header_rows["CloudFront"] == "E1 · Deployed · sends no origin header (x-h)"


def test_status_in_edge_signed_mode_names_a_static_header_left_by_a_switch() -> None:
    data = status_of(
        {"mode": "edge-signed", "fingerprints": {"current": "d31efebe4449"}, "key_ids": {}},
        [{"slot": "current", "fingerprint": "d31efebe4449"}],
    )

    [line] = [text for label, text in status_rows(data) if label == "CloudFront"]

    assert "as a static origin header (finish the switch to edge-signed mode)" in line
