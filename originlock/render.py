"""How the CLI shows things with rich: steps of an execution, status, history.

Everything here receives data from :mod:`originlock.operations`, which carries fingerprints
and never a token value.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from originlock.operations import Outcome, Step

HIDDEN_KINDS = ("Choice", "Pass")
ICONS = {"succeeded": "[green]✓[/]", "failed": "[red]✗[/]", "running": "[yellow]…[/]"}


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
    label = step.name + (f" x{count}" if count > 1 else "")
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
            icon = Text.from_markup(ICONS.get(step.status, "?"))
        table.add_row(icon, step_label(step, count), duration(total), step.error or "")
    header = Text.assemble(
        (outcome.name, "bold"), "  ", _status_text(outcome.status), f"  {duration(_age(outcome))}"
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
    return Text(status, style=f"bold {style}")


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
            extra = f"  {step.error}" if step.error else ""
            retried = f" (retried {step.retries})" if step.retries else ""
            label = f"{self.indent}{mark} {step.name}{retried}"
            self.console.print(
                f"{label:<34}{duration(step.seconds):>8}{extra}", markup=False, highlight=False
            )
        self._printed = len(done)


def outcome_line(outcome: Outcome) -> str:
    took = duration(_age(outcome))
    if outcome.succeeded:
        return f"{outcome.name} SUCCEEDED in {took}"
    where = f" at step {outcome.failed_step}" if outcome.failed_step else ""
    why = f": {outcome.cause or outcome.error or 'no cause recorded'}"
    return f"{outcome.name} {outcome.status} after {took}{where}{why}"


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
    for slot, fp in token["fingerprints"].items():
        rows.append((f"  {slot}", fp or "—"))
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
        sends = sends or f"no origin header ({distribution.get('header_name') or '?'})"
        rows.append(
            ("CloudFront", f"{distribution['id']} · {distribution['status']} · sends {sends}")
        )
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
    for label, text in status_rows(data):
        console.print(f"{label:<14} {text}", markup=False, highlight=False)


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
    if execution.get("error"):
        line += f" · {execution.get('cause') or execution['error']}"
    return line


def history_table(executions: list[dict[str, Any]]) -> Table:
    table = Table(show_edge=False, header_style="bold")
    for column in ("Started (UTC)", "Execution", "What", "Trigger", "Status", "Took", "By"):
        table.add_column(column)
    table.add_column("Error", style="red", overflow="fold")
    for execution in executions:
        what = execution.get("mode") or "?"
        if execution.get("revoke"):
            what += f" {execution['revoke']}"
        status = execution["status"]
        style = {"SUCCEEDED": "green", "RUNNING": "yellow"}.get(status, "red")
        table.add_row(
            (execution.get("started_at") or "").replace("T", " ").rstrip("Z"),
            execution["name"],
            what,
            execution.get("trigger") or "?",
            Text(status, style=style),
            duration(execution.get("seconds")),
            execution.get("requested_by") or "",
            execution.get("cause") or execution.get("error") or "",
        )
    return table
