"""How the CLI shows things with rich: steps of an execution, status, history.

Everything here receives data from :mod:`originlock.operations`, which carries fingerprints
and never a token value.

Text that came from AWS (execution names and inputs, state names, errors, causes, tags) is
anyone's: whoever can start an execution writes its input. It is never parsed as rich markup
(each such string becomes a :class:`~rich.text.Text`) and its control characters are escaped
by :func:`printable`, so an ANSI or OSC sequence in ``requested_by`` cannot reach the terminal.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from originlock.operations import Outcome, Step

HIDDEN_KINDS = ("Choice", "Pass")
ICONS = {"succeeded": ("✓", "green"), "failed": ("✗", "red"), "running": ("…", "yellow")}
# Control characters (C0, DEL, C1), format characters (bidirectional overrides, zero-width
# joiners: text that reads differently from what it is), surrogates, line and paragraph
# separators. Everything else, accents and scripts included, is shown as it is.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
REQUESTED_BY_LABEL = "as given by the caller, not verified"


def printable(value: object) -> str:
    r"""*value* as text a terminal shows and never obeys: one line, control characters escaped.

    ``ESC`` becomes ``\x1b``, a newline ``\n``, U+202E ``\u202e``, and so on (as Python
    writes them in a string literal). ``None`` is the empty string.
    """
    string = "" if value is None else value if isinstance(value, str) else str(value)
    if string.isprintable():
        return string
    return "".join(
        _escape(char) if unicodedata.category(char) in _ESCAPED_CATEGORIES else char
        for char in string
    )


_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def text(value: object, style: str = "") -> Text:
    """*value* as a rich ``Text``: never read as markup or emoji codes, escaped by
    :func:`printable`."""
    return Text(printable(value), style=style)


def duration(seconds: float | None) -> str:
    """``0.4 s``, ``12 s``, ``3 min``, ``2 h 5 min``, ``6 d 23 h``."""
    if seconds is None:
        return "—"
    seconds = abs(seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 120:
        return f"{minutes:.0f} min"
    hours = int(minutes // 60)
    if hours < 48:
        return f"{hours} h {int(minutes % 60)} min"
    return f"{hours // 24} d {hours % 24} h"


def since(timestamp: str | None) -> str:
    if not timestamp:
        return "—"
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp
    delta = (datetime.now(UTC) - moment).total_seconds()
    return f"{timestamp} ({duration(delta)} {'ago' if delta >= 0 else 'from now'})"


# -- an execution's steps ---------------------------------------------------------------------
def grouped(steps: list[Step]) -> list[tuple[Step, int, float]]:
    """Visible steps in first-seen order; a state entered again (a polling loop) is counted
    on its first row: ``(last occurrence, times entered, total seconds)``."""
    rows: dict[str, tuple[Step, int, float]] = {}
    for step in steps:
        if step.kind in HIDDEN_KINDS:
            continue
        _, count, total = rows.get(step.name, (step, 0, 0.0))
        rows[step.name] = (step, count + 1, total + (step.seconds or 0.0))
    return list(rows.values())


def step_label(step: Step, count: int) -> str:
    label = printable(step.name) + (f" x{count}" if count > 1 else "")
    if step.retries:
        label += f" (retried {step.retries})"
    return label


def steps_table(outcome: Outcome) -> RenderableType:
    table = Table.grid(padding=(0, 2))
    table.add_column(width=1)
    table.add_column()
    table.add_column(justify="right")
    table.add_column(style="red")
    for step, count, total in grouped(outcome.steps):
        icon: RenderableType
        if step.status == "running" and not outcome.finished:
            icon = Spinner("dots", style="yellow")
        else:
            mark, style = ICONS.get(step.status, ("?", ""))
            icon = Text(mark, style=style)
        table.add_row(
            icon, Text(step_label(step, count)), Text(duration(total)), text(step.error, "red")
        )
    header = Text.assemble(
        text(outcome.name, "bold"),
        "  ",
        _status_text(outcome.status),
        f"  {duration(_age(outcome))}",
    )
    return Group(header, table)


def _age(outcome: Outcome) -> float | None:
    if not outcome.started_at:
        return None
    start = datetime.fromisoformat(outcome.started_at.replace("Z", "+00:00"))
    end = (
        datetime.fromisoformat(outcome.stopped_at.replace("Z", "+00:00"))
        if outcome.stopped_at
        else datetime.now(UTC)
    )
    return (end - start).total_seconds()


def _status_text(status: str) -> Text:
    style = {"SUCCEEDED": "green", "RUNNING": "yellow"}.get(status, "red")
    return text(status, f"bold {style}")


class StepPrinter:
    """Prints each step once it has ended, for output that is not a terminal (CI, files)."""

    def __init__(self, console: Console, indent: str = "  ") -> None:
        self.console = console
        self.indent = indent
        self._printed = 0

    def __call__(self, outcome: Outcome) -> None:
        visible = [s for s in outcome.steps if s.kind not in HIDDEN_KINDS]
        done = [s for s in visible if s.ended is not None or outcome.finished]
        # Steps end in order: print those not printed yet.
        for step in done[self._printed :]:
            mark = "✓" if step.status == "succeeded" else ("✗" if step.status == "failed" else "·")
            extra = f"  {printable(step.error)}" if step.error else ""
            retried = f" (retried {step.retries})" if step.retries else ""
            label = f"{self.indent}{mark} {printable(step.name)}{retried}"
            self.console.print(Text(f"{label:<34}{duration(step.seconds):>8}{extra}"))
        self._printed = len(done)


def outcome_line(outcome: Outcome) -> str:
    """One line: the execution, how it ended and, if it failed, where and why (escaped)."""
    took = duration(_age(outcome))
    name = printable(outcome.name)
    if outcome.succeeded:
        return f"{name} SUCCEEDED in {took}"
    where = f" at step {printable(outcome.failed_step)}" if outcome.failed_step else ""
    why = f": {printable(outcome.cause or outcome.error or 'no cause recorded')}"
    return f"{name} {printable(outcome.status)} after {took}{where}{why}"


# -- status -----------------------------------------------------------------------------------
def token_lines(token: dict[str, Any]) -> list[tuple[str, str]]:
    current_since = token.get("current_since")
    rows = [
        (
            "Token",
            f"generation {token['generation']} · updated {since(token.get('updated_at'))}",
        ),
        (
            "  age",
            f"current since {since(current_since)}"
            if current_since
            else "not known (the current value was adopted, not rotated in)",
        ),
    ]
    edge = token.get("mode") == "edge-signed"
    rows.insert(
        0,
        (
            "Mode",
            "edge-signed (a CloudFront Function signs each request with the KeyValueStore's "
            "key; the slots hold signing keys)"
            if edge
            else "header (CloudFront sends the current value)",
        ),
    )
    key_ids = token.get("key_ids") or {}
    for slot, fp in token["fingerprints"].items():
        kid = key_ids.get(slot)
        rows.append((f"  {slot}", (fp or "—") + (f" · key id {kid}" if edge and kid else "")))
    if token.get("adopted_plain"):
        rows.append(("", "bare value (not yet a token document): the next rotation converts it"))
    return rows


def status_rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    """``status`` as (label, text) rows: fingerprints and names, never a value."""
    rows = [("Target", data["target"]), ("Parameter", data["parameter"])]
    rows += token_lines(data["token"])
    distribution = data.get("distribution")
    if distribution:
        sends = ", ".join(f"{s['slot']} ({s['fingerprint']})" for s in distribution["sends"])
        if data["token"].get("mode") == "edge-signed":
            # No origin custom header in this mode: the function's header would lose to it.
            what = (
                f"sends {sends} as a static origin header (finish the switch to edge-signed mode)"
                if sends
                else "signs at the edge (no static origin header)"
            )
        else:
            what = f"sends {sends or 'no origin header'}"
            if not sends:
                what += f" ({distribution.get('header_name') or '?'})"
        rows.append(("CloudFront", f"{distribution['id']} · {distribution['status']} · {what}"))
    else:
        rows.append(("CloudFront", "unknown (no distribution id)"))
    running = data.get("running_execution")
    if running:
        rows.append(("Rotation", f"RUNNING {running['name']}"))
        rows.append(("", f"now at {running.get('state') or '?'} · {execution_details(running)}"))
    else:
        rows.append(("Rotation", "none running"))
    last = data.get("last_execution")
    if last and not running:
        rows.append(("Last run", f"{last['status']} {last['name']}"))
        rows.append(("", execution_details(last)))
    rows.append(("Next rotation", schedule_line(data.get("schedule") or {})))
    return rows


def print_status(console: Console, data: dict[str, Any]) -> None:
    for label, line in status_rows(data):
        # One row, one line: the terminal folds a long one, a log keeps it whole.
        console.print(Text(f"{label:<14} {printable(line)}"), soft_wrap=True)


def schedule_line(schedule: dict[str, Any]) -> str:
    if schedule.get("next_run"):
        return (
            f"{since(schedule['next_run'])} · {schedule.get('name')} "
            f"{schedule.get('expression', '')}".strip()
        )
    detail = schedule.get("note") or schedule.get("state") or ""
    expression = schedule.get("expression")
    return (
        "unknown" + (f" ({expression})" if expression else "") + (f": {detail}" if detail else "")
    )


def execution_details(execution: dict[str, Any]) -> str:
    what = execution.get("mode") or "?"
    if execution.get("revoke"):
        what += f" {execution['revoke']}"
    line = (
        f"{what} ({execution.get('trigger') or '?'}) · started {since(execution.get('started_at'))}"
    )
    if execution.get("seconds") is not None:
        line += f" · took {duration(execution['seconds'])}"
    if execution.get("requested_by"):
        line += f" · requested by {execution['requested_by']} ({REQUESTED_BY_LABEL})"
    if execution.get("error"):
        line += f" · {execution.get('cause') or execution['error']}"
    return printable(line)


def history_view(executions: list[dict[str, Any]]) -> RenderableType:
    """The executions as a table, then the error of each failed one on its own line.

    Every execution name is whole, whatever the width: it is what ``watch`` and the console
    take. The short columns never wrap; ``Requested by`` (free text from the execution's
    input) folds into what is left; errors, often long, go below the table rather than into
    a column that 120 terminal columns could not hold.
    """
    names = [printable(e.get("name")) for e in executions]
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        header_style="bold",
    )
    table.add_column("Started (UTC)", no_wrap=True)
    table.add_column("Execution", no_wrap=True, min_width=max(map(len, names), default=9))
    for column in ("What", "Status", "Took"):
        table.add_column(column, no_wrap=True)
    table.add_column("Requested by (as given)", overflow="fold", min_width=12)
    errors: list[RenderableType] = []
    for name, execution in zip(names, executions, strict=True):
        what = str(execution.get("mode") or "?")
        if execution.get("revoke"):
            what = f"{what} {execution['revoke']}"
        if execution.get("trigger") not in (None, "manual"):
            what = f"{what} ({execution['trigger']})"
        status = execution.get("status")
        style = {"SUCCEEDED": "green", "RUNNING": "yellow"}.get(str(status), "red")
        table.add_row(
            text((execution.get("started_at") or "").replace("T", " ").rstrip("Z")),
            Text(name),
            text(what),
            text(status, style),
            Text(duration(execution.get("seconds"))),
            text(execution.get("requested_by")),
        )
        why = execution.get("cause") or execution.get("error")
        if why:
            errors.append(Text.assemble(f"{name}: ", text(why, "red")))
    return Group(table, *errors)
