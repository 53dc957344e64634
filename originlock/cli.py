"""``originlock``: rotate, revoke and inspect the origin secret, on AWS or in the sandbox.

The same commands, the same code path, two kinds of target (see :mod:`originlock.target`)::

    originlock --stack Originlock --profile prod status
    originlock --sandbox rotate --wait
    originlock status --stack Originlock          # the target options after the command too

Every error ends as one line on stderr and a non-zero exit (1; 2 for a usage error), never a
traceback. Nothing printed, in any format, contains a token value: fingerprints only. Text
that came from AWS is shown as text: never read as markup, control characters escaped
(:func:`originlock.render.printable`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.live import Live
from rich.text import Text
from typer.core import TyperGroup

from originlock import doctor as preflight
from originlock import operations, render
from originlock.errors import NO_REGION, describe_error
from originlock.target import Target, TargetOptions, resolve, sandbox_file, session_for

DEBUG_ENV = "ORIGINLOCK_DEBUG"  # set to 1 to see tracebacks (never in production output)

REVOKE_ALL_EXPLANATION = (
    "Revoke all replaces the origin secret now and stops accepting every earlier value "
    "(current and previous) right after CloudFront is told to switch. Until CloudFront reports "
    "Deployed (usually within 5 minutes, sometimes 15 to 20), edges that have not switched yet "
    "still send the revoked value and their requests get 403 Forbidden: that is the price of "
    "an emergency. For a routine change use `originlock rotate`, which refuses no request."
)
REVOKE_PREVIOUS_EXPLANATION = (
    "Revoke previous drops the previous value now. CloudFront no longer sends it, so no "
    "legitimate request is refused."
)


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr, then exit: the shape of every error of this CLI. The message may
    quote AWS (an error's message, a cause): its control characters are escaped."""
    sys.stderr.write(f"error: {render.printable(' '.join(message.split()))}\n")
    sys.stderr.flush()
    raise SystemExit(code)


class OneLineErrors(TyperGroup):
    """Turns every exception, usage errors included, into one line on stderr.

    ``CliRunner`` calls ``main`` as well, so the tests see exactly what a user sees.
    """

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        code = 0
        try:
            result = super().main(
                args=args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
            code = result if isinstance(result, int) else 0
        except typer.Abort:
            fail("aborted")
        except typer.TyperException as exc:  # usage errors: typer's own click
            message = exc.format_message()
            if not message:  # no arguments: the help was printed
                raise SystemExit(exc.exit_code) from None
            fail(f"{message} (see originlock --help)", exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except SystemExit:
            raise
        except Exception as exc:
            if os.environ.get(DEBUG_ENV) == "1":
                raise
            fail(describe_error(exc))
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=OneLineErrors,
    name="originlock",
    help="Rotate and revoke the CloudFront origin secret of an HTTP API, without dropping a "
    "request. On AWS (--stack) or in the local sandbox (--sandbox).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object (for scripts) instead of text.")
]
WaitOption = Annotated[
    bool, typer.Option("--wait", help="Follow the execution step by step until it ends.")
]
ReasonOption = Annotated[
    str, typer.Option("--reason", help="Why: recorded in the execution's input.")
]


class Scope(StrEnum):
    previous = "previous"
    all = "all"


def _console(stderr: bool = False) -> Console:
    # No markup, no emoji codes, no highlighting: what is printed is what the text says.
    console = Console(stderr=stderr, highlight=False, markup=False, emoji=False)
    if not console.is_terminal:
        console.width = 140  # a log or a pipe: no reason to wrap at 80 columns
    return console


def _out() -> Console:
    return _console()


def _err() -> Console:
    return _console(stderr=True)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def version() -> str:
    """The installed package's version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("originlock")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"originlock {version()}\n")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
    profile: Annotated[
        str | None, typer.Option("--profile", help="AWS profile (standard credential chain).")
    ] = None,
    region: Annotated[str | None, typer.Option("--region", help="AWS region.")] = None,
    stack: Annotated[
        str | None,
        typer.Option(
            "--stack",
            envvar="ORIGINLOCK_STACK",
            help="CloudFormation stack whose outputs name the resources.",
        ),
    ] = None,
    sandbox: Annotated[
        bool,
        typer.Option("--sandbox", help="Operate on the local sandbox (`originlock sandbox`)."),
    ] = False,
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            "--endpoint-url",
            envvar="ORIGINLOCK_ENDPOINT_URL",
            help="An AWS-compatible endpoint (the sandbox's moto URL, for instance).",
        ),
    ] = None,
) -> None:
    ctx.obj = TargetOptions(
        profile=profile, region=region, stack=stack, sandbox=sandbox, endpoint_url=endpoint_url
    )


# The target options again, for after the command (`originlock status --stack X`): each
# command that operates on a target takes them and merges them with those given before it.
TARGET_PANEL = "Target (also accepted before the command)"
StackAfter = Annotated[
    str | None,
    typer.Option(
        "--stack",
        help="CloudFormation stack whose outputs name the resources.",
        rich_help_panel=TARGET_PANEL,
    ),
]
SandboxAfter = Annotated[
    bool, typer.Option("--sandbox", help="The local sandbox.", rich_help_panel=TARGET_PANEL)
]
EndpointAfter = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url", help="An AWS-compatible endpoint.", rich_help_panel=TARGET_PANEL
    ),
]
ProfileAfter = Annotated[
    str | None, typer.Option("--profile", help="AWS profile.", rich_help_panel=TARGET_PANEL)
]
RegionAfter = Annotated[
    str | None, typer.Option("--region", help="AWS region.", rich_help_panel=TARGET_PANEL)
]


def _options(
    ctx: typer.Context,
    stack: str | None,
    sandbox: bool,
    endpoint_url: str | None,
    profile: str | None,
    region: str | None,
) -> TargetOptions:
    """The app's target options with those given after the command (``None`` or ``False``:
    not given). One given on both sides with two values is a usage error."""
    root = ctx.find_root()
    options = root.obj if isinstance(root.obj, TargetOptions) else TargetOptions()
    after: dict[str, Any] = {
        "stack": stack,
        "sandbox": sandbox,
        "endpoint_url": endpoint_url,
        "profile": profile,
        "region": region,
    }
    for name, value in after.items():
        if value is None or value is False:
            continue
        before = getattr(options, name)
        source = root.get_parameter_source(name)
        given_before = source is not None and source.name == "COMMANDLINE"
        if given_before and before != value:
            flag = "--" + name.replace("_", "-")
            raise typer.BadParameter(
                f"given before the command ({before}) and after it ({value}): give it once",
                param_hint=f"'{flag}'",
            )
        options = replace(options, **{name: value})
    return options


def _target(
    ctx: typer.Context,
    stack: str | None,
    sandbox: bool,
    endpoint_url: str | None,
    profile: str | None,
    region: str | None,
) -> Target:
    return resolve(_options(ctx, stack, sandbox, endpoint_url, profile, region))


# -- rotate, revoke and watch --------------------------------------------------------------
def _run(
    target: Target, mode: str, scope: str | None, wait: bool, as_json: bool, reason: str
) -> None:
    started = operations.start(target, mode, scope=scope, reason=reason)
    what = f"{mode} {scope}" if scope else mode
    if started.preempts is not None:
        # The workflow's lock stops it as this execution starts (docs/runbook.md).
        (_err() if as_json else _out()).print(
            Text(
                render.printable(
                    f"preempting the running {started.preempts['what']} "
                    f"{started.preempts['name']}: it is stopped, and "
                    + (
                        "its staged value is replaced or, if CloudFront already sends it, "
                        "kept as the new one"
                        if scope == "all"
                        else "a value it staged stays staged (the next rotation rolls it forward)"
                    )
                )
            )
        )
    if not wait:
        if as_json:
            _print_json(
                {
                    "execution_arn": started.execution_arn,
                    "name": started.name,
                    "status": "RUNNING",
                    "preempts": started.preempts,
                }
            )
        else:
            _out().print(
                Text(
                    f"started {what}: {started.name}\n"
                    f"follow it with `{target.command('watch', started.name)}` "
                    f"(or `{target.command('status')}`), or next time add --wait"
                )
            )
        return
    _follow(target, started.execution_arn, started.name, what, as_json, started.preempts)


def _follow(
    target: Target,
    execution_arn: str,
    name: str,
    what: str,
    as_json: bool,
    preempts: dict[str, Any] | None = None,
) -> None:
    """Follow an execution to its end (the display of ``--wait`` and ``watch``); exit 1 if it
    failed, 130 on Ctrl-C (it keeps running)."""
    interval = 0.5 if target.local else 2.0
    try:
        if as_json:
            outcome = operations.watch(target, execution_arn, interval=interval)
        else:
            outcome = _watch_visibly(target, execution_arn, name, what, interval)
    except KeyboardInterrupt:
        fail(
            f"stopped watching {name}; it keeps running: re-attach with "
            f"`{target.command('watch', name)}`",
            130,
        )
    result = outcome.to_json()
    result["preempts"] = preempts
    if outcome.succeeded:
        result["token"] = operations.token_status(operations.read_document(target))
    if as_json:
        _print_json(result)
    elif outcome.succeeded:
        token = result["token"]
        kid = (token.get("key_ids") or {}).get("current")
        _out().print(
            Text.assemble(
                (render.outcome_line(outcome), "green"),
                f": current {token['fingerprints']['current']}"
                + (f" (key id {kid})" if kid else "")
                + f", generation {token['generation']}",
            )
        )
    if not outcome.succeeded:
        fail(render.outcome_line(outcome))


def _watch_visibly(
    target: Target, execution_arn: str, name: str, what: str, interval: float
) -> operations.Outcome:
    console = _out()
    console.print(
        Text(f"{render.printable(what)}: {render.printable(name)} on ")
        + render.text(target.description)
    )
    if not console.is_terminal:
        return operations.watch(
            target, execution_arn, render.StepPrinter(console), interval=interval
        )
    with Live(console=console, refresh_per_second=8, transient=False) as live:
        return operations.watch(
            target,
            execution_arn,
            lambda outcome: live.update(render.steps_table(outcome)),
            interval=interval,
        )


@app.command()
def rotate(
    ctx: typer.Context,
    wait: WaitOption = False,
    reason: ReasonOption = "manual rotation",
    as_json: JsonOption = False,
    stack: StackAfter = None,
    sandbox: SandboxAfter = False,
    endpoint_url: EndpointAfter = None,
    profile: ProfileAfter = None,
    region: RegionAfter = None,
) -> None:
    """Rotate the origin secret now (stage, switch, promote, retire): no request is refused."""
    _run(
        _target(ctx, stack, sandbox, endpoint_url, profile, region),
        "rotate",
        None,
        wait,
        as_json,
        reason,
    )


@app.command()
def revoke(
    ctx: typer.Context,
    scope: Annotated[
        Scope, typer.Argument(help="previous: drop the previous value. all: the value leaked.")
    ],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    reset: Annotated[
        bool,
        typer.Option(
            "--reset",
            help=(
                "previous: start even with nothing to drop, to replace the authorizer's "
                "instances and empty API Gateway's cache (the runbook's recovery step)."
            ),
        ),
    ] = False,
    wait: WaitOption = False,
    reason: ReasonOption = "emergency revoke",
    as_json: JsonOption = False,
    stack: StackAfter = None,
    sandbox: SandboxAfter = False,
    endpoint_url: EndpointAfter = None,
    profile: ProfileAfter = None,
    region: RegionAfter = None,
) -> None:
    """Revoke accepted values: `previous` at once, or `all` (a leak) with a new value."""
    target = _target(ctx, stack, sandbox, endpoint_url, profile, region)
    explain = _err() if as_json else _out()
    if scope is Scope.previous and not reset and _nothing_to_revoke(target, as_json):
        return
    if scope is Scope.all:
        explain.print(REVOKE_ALL_EXPLANATION)
        if not yes:
            try:
                confirmed = typer.confirm("Revoke every accepted value now?", err=True)
            except typer.Abort:
                fail("revoke all needs a confirmation: answer y at the prompt, or pass --yes")
            if not confirmed:
                fail("revoke all cancelled: nothing was changed")
    else:
        explain.print(REVOKE_PREVIOUS_EXPLANATION)
    _run(target, "revoke", scope.value, wait, as_json, reason)


def _nothing_to_revoke(target: Target, as_json: bool) -> bool:
    """``revoke previous`` with an empty ``previous`` slot: say so, start nothing. (While an
    execution runs, the slot may be about to fill: ``start`` refuses and names it.)"""
    document = operations.read_document(target)
    if document.previous is not None or operations.running_executions(target):
        return False
    message = (
        "nothing to revoke: the previous slot is empty, no earlier value is accepted "
        "(--reset still replaces the authorizer's instances and empties API Gateway's cache)"
    )
    if as_json:
        _print_json(
            {
                "execution_arn": None,
                "name": None,
                "status": "NOTHING_TO_REVOKE",
                "message": message,
                "token": operations.token_status(document),
            }
        )
    else:
        _out().print(Text(f"{message}; nothing was started"))
    return True


@app.command()
def watch(
    ctx: typer.Context,
    execution: Annotated[
        str | None,
        typer.Argument(
            help="Execution name or ARN (`history` lists them); default: the running one."
        ),
    ] = None,
    as_json: JsonOption = False,
    stack: StackAfter = None,
    sandbox: SandboxAfter = False,
    endpoint_url: EndpointAfter = None,
    profile: ProfileAfter = None,
    region: RegionAfter = None,
) -> None:
    """Follow an execution step by step until it ends, as --wait does (re-attach after Ctrl-C)."""
    target = _target(ctx, stack, sandbox, endpoint_url, profile, region)
    described = operations.find_execution(target, execution)
    request = operations.request_of(described)
    what = str(request.get("mode") or "execution")
    if request.get("revoke"):
        what = f"{what} {request['revoke']}"
    _follow(target, str(described["executionArn"]), str(described["name"]), what, as_json)


# -- status and history -------------------------------------------------------------------------
@app.command()
def status(
    ctx: typer.Context,
    as_json: JsonOption = False,
    stack: StackAfter = None,
    sandbox: SandboxAfter = False,
    endpoint_url: EndpointAfter = None,
    profile: ProfileAfter = None,
    region: RegionAfter = None,
) -> None:
    """Token age, generation, fingerprints, CloudFront, a running rotation, the next one."""
    data = operations.status(_target(ctx, stack, sandbox, endpoint_url, profile, region))
    if as_json:
        _print_json(data)
    else:
        render.print_status(_out(), data)


@app.command()
def history(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="How many.")] = 10,
    as_json: JsonOption = False,
    stack: StackAfter = None,
    sandbox: SandboxAfter = False,
    endpoint_url: EndpointAfter = None,
    profile: ProfileAfter = None,
    region: RegionAfter = None,
) -> None:
    """The latest executions of the rotation workflow, newest first."""
    executions = operations.history(
        _target(ctx, stack, sandbox, endpoint_url, profile, region),
        limit,
    )
    if as_json:
        _print_json({"executions": executions})
    elif not executions:
        _out().print(Text("no rotation has run yet"))
    else:
        _out().print(render.history_view(executions))


# -- before a deploy ------------------------------------------------------------------------------
DOCTOR_STYLES = {
    preflight.OK: "green",
    preflight.WARN: "yellow",
    preflight.UNKNOWN: "yellow",
    preflight.FAIL: "bold red",
}


@app.command()
def doctor(
    ctx: typer.Context,
    cdk_json: Annotated[
        Path, typer.Option("--cdk-json", help="The CDK app's cdk.json, whose context is read.")
    ] = Path("cdk.json"),
    context: Annotated[
        list[str] | None,
        typer.Option(
            "--context", "-c", help="A context value, KEY=VALUE, as `cdk deploy -c` takes it."
        ),
    ] = None,
    as_json: JsonOption = False,
    stack: StackAfter = None,
    sandbox: SandboxAfter = False,
    endpoint_url: EndpointAfter = None,
    profile: ProfileAfter = None,
    region: RegionAfter = None,
) -> None:
    """Before a deploy: Lambda's concurrency quota, the CDK bootstrap (your region and
    us-east-1), Parameter Store's throughput. Exits 1 if something would stop `cdk deploy`."""
    options = _options(ctx, stack, sandbox, endpoint_url, profile, region)
    if options.sandbox:
        fail("doctor checks an AWS account before a deploy; the sandbox needs none: drop --sandbox")
    overrides = {}
    for item in context or []:
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="'--context'")
        overrides[key.strip()] = value
    settings = preflight.DeploySettings.load(cdk_json, overrides)
    if options.stack:
        settings = replace(settings, stack_name=options.stack)
    session = session_for(options)
    # Where `cdk deploy` goes: the context's region, else the CLI's (AWS_REGION, the profile).
    region = settings.region or session.region_name
    if not region:
        fail(NO_REGION)
    report = preflight.diagnose(
        preflight.AwsAccount(session, options.endpoint_url), settings, region
    )
    if as_json:
        _print_json(report.to_json())
    else:
        _print_report(report)
    if report.blocking:
        names = ", ".join(check.name for check in report.blocking)
        fail(
            f"{len(report.blocking)} finding(s) would stop a deploy ({names}): run the commands "
            f"above, then `{options.command('doctor')}` again"
        )


def _print_report(report: preflight.Report) -> None:
    console = _out()
    console.print(
        render.text(
            f"originlock doctor: account {report.account}, region {report.region}, "
            f"stack {report.settings.stack_name} (settings: {report.settings.source})"
        ),
        soft_wrap=True,
    )
    for check in report.checks:
        line = Text.assemble(
            "  ",
            (f"{check.status.upper():<8}", DOCTOR_STYLES.get(check.status, "")),
            render.text(f"{check.name}: {check.summary}"),
        )
        if check.command:
            line.append(render.printable(f"; run: {check.command}"))
        # Soft wrap: the terminal folds a long line, so a command pastes whole.
        console.print(line, soft_wrap=True)
    if report.ok:
        console.print(Text("nothing found that would stop a deploy", style="green"))


# -- the sandbox and the demo ---------------------------------------------------------------------
class LockMode(StrEnum):
    header = "header"
    edge_signed = "edge-signed"


LockModeOption = Annotated[
    LockMode,
    typer.Option(
        "--lock-mode",
        help="header: CloudFront sends a stored value; edge-signed: a CloudFront Function "
        "signs each request with a KeyValueStore key (docs/edge-signed.md).",
    ),
]


@app.command()
def demo(
    edges: Annotated[int, typer.Option("--edges", min=1, max=16, help="CloudFront edges.")] = 4,
    lock_mode: LockModeOption = LockMode.header,
    as_json: JsonOption = False,
    settings: Annotated[
        str | None,
        typer.Option(
            "--settings",
            hidden=True,  # for the e2e tests: shorter phases through the same command
            help="DemoSettings fields as a JSON object, e.g. '{\"baseline\": 1}', and "
            'optionally "timings": SandboxTimings fields.',
        ),
    ] = None,
) -> None:
    """Offline: rotations and a revoke under traffic; what was lost, what got in (nothing).

    The sandbox under traffic: a scheduled rotation, a manual one, an emergency revoke all;
    in edge-signed mode also a leaked header value replayed until it is refused.

    Exits 1 if an invariant broke (a legitimate request lost, an attacker let in).
    """
    _need_sandbox_extra("demo")
    from originlock.demo import main as run_demo

    demo_settings, timings = _demo_settings(settings)
    raise typer.Exit(
        run_demo(
            edges=edges,
            as_json=as_json,
            settings=demo_settings,
            timings=timings,
            lock_mode=lock_mode.value,
        )
    )


# What the sandbox runs beyond the CLI's own dependencies (pyproject.toml's sandbox extra).
SANDBOX_MODULES = ("moto", "waitress", "aws_lambda_powertools")


def _need_sandbox_extra(command: str) -> None:
    """Stop with the install command when the sandbox extra is missing (a CLI-only install)."""
    from importlib.util import find_spec

    missing = [name for name in SANDBOX_MODULES if find_spec(name) is None]
    if missing:
        fail(
            f"originlock {command} needs the sandbox extra ({', '.join(missing)} missing): "
            "pip install 'originlock[sandbox]'"
        )


def _demo_settings(text: str | None) -> tuple[Any, Any]:
    """``--settings`` as ``(DemoSettings, SandboxTimings)`` (``None`` for what it leaves out);
    a usage error (exit 2) if it is not a JSON object of ``DemoSettings`` numbers, with
    optionally ``"timings"``, an object of ``SandboxTimings`` fields."""
    from dataclasses import fields

    from originlock.demo import DemoSettings
    from originlock.sandbox import SandboxTimings

    if text is None:
        return None, None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    known = {f.name for f in fields(DemoSettings)}
    timing_fields = {f.name for f in fields(SandboxTimings)}
    timings = data.pop("timings", None) if isinstance(data, dict) else None

    def numbers(values: Any) -> bool:
        return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)

    if (
        not isinstance(data, dict)
        or not set(data) <= known
        or not numbers(data.values())
        or not (timings is None or isinstance(timings, dict))
        or not set(timings or {}) <= timing_fields
        or not numbers(v for k, v in (timings or {}).items() if k not in WINDOW_TIMINGS)
        or not all(_window((timings or {}).get(k, [0, 0])) for k in WINDOW_TIMINGS)
    ):
        raise typer.BadParameter(
            f"a JSON object of numbers, with some of: {', '.join(sorted(known))}; and "
            f'optionally "timings": {{{", ".join(sorted(timing_fields))}}}',
            param_hint="'--settings'",
        )
    for key in WINDOW_TIMINGS:
        if timings is not None and key in timings:
            timings[key] = tuple(timings[key])
    if any(not isinstance((timings or {}).get(k, 0), int) for k in WHOLE_TIMINGS):
        raise typer.BadParameter(
            f"{' and '.join(WHOLE_TIMINGS)} are whole numbers", param_hint="'--settings'"
        )
    return DemoSettings(**data), (None if timings is None else SandboxTimings(**timings))


# SandboxTimings fields that are (low, high) windows rather than numbers.
WINDOW_TIMINGS = ("deploy_window", "kvs_propagation")
WHOLE_TIMINGS = ("edge_window", "edge_tolerance")


def _window(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )


@app.command()
def sandbox(
    edges: Annotated[int, typer.Option("--edges", min=1, max=16, help="CloudFront edges.")] = 4,
    lock_mode: LockModeOption = LockMode.header,
    as_json: JsonOption = False,
) -> None:
    """Start the local sandbox and serve until Ctrl-C (then use `originlock --sandbox ...`)."""
    _need_sandbox_extra("sandbox")
    from originlock.sandbox import Sandbox

    stop = threading.Event()
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, lambda *_: stop.set())}
    try:
        with Sandbox(edges=edges, state_file=sandbox_file(), lock_mode=lock_mode.value) as sb:
            info = sb.describe()
            if as_json:
                _print_json(info)
            else:
                _sandbox_banner(info)
            sys.stdout.flush()
            # Once it serves, Ctrl-C stops it whatever this process inherited: a parent that
            # ignores SIGINT (a test runner's worker, a script's background job) would
            # otherwise leave Ctrl-C without effect.
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, lambda *_: stop.set())
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not as_json:
        _err().print(Text("sandbox stopped"))


def _sandbox_banner(info: dict[str, Any]) -> None:
    console = _out()
    rows = [("moto endpoint", info["endpoint_url"]), ("API (direct)", info["api_url"])]
    rows += [(f"CloudFront edge {n}", url) for n, url in enumerate(info["edge_urls"], 1)]
    console.print(
        Text.assemble(
            ("originlock sandbox", "bold"),
            f" ({info.get('lock_mode', 'header')} mode; loopback only; Ctrl-C stops it)",
        )
    )
    for label, value in rows:
        console.print(Text(f"  {label:<18} {render.printable(value)}"))
    console.print(Text("try:"))
    for line in (
        f"curl -i {info['api_url']}      # 401: no origin header",
        f"curl -i {info['cloudfront_url']}      # 200: through CloudFront",
        "originlock --sandbox status",
        "originlock --sandbox rotate --wait",
        "originlock --sandbox revoke all --yes --wait",
    ):
        console.print(Text(f"  {line}"))


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point."""
    command = typer.main.get_command(app)
    return int(command.main(args=argv, prog_name="originlock", standalone_mode=False) or 0)


if __name__ == "__main__":
    sys.exit(main())
