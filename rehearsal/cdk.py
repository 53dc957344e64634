"""The pinned CDK CLI, as a user runs it: synth, bootstrap, deploy, destroy.

The only differences from a deploy to AWS are the environment (:meth:`Ministack.environment`:
an endpoint, dummy credentials, ministack's certificate) and a watchdog: a custom resource
whose function never answers would hold the deploy for its 300 s service timeout, so one that
is still in progress after :data:`STALL_SECONDS` stops the deploy, named with its function's
last error line.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from rehearsal.emulator import Ministack
from rehearsal.errors import RehearsalError

ROOT = Path(__file__).resolve().parent.parent
CDK = [str(ROOT / "node_modules" / ".bin" / "cdk")]
# Our custom resources answer in about a second (a cold start included).
STALL_SECONDS = 30.0
QUIET = {
    "CDK_DISABLE_VERSION_CHECK": "1",
    "CDK_DISABLE_CLI_TELEMETRY": "true",
    "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    "AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE": "1",
    "NODE_NO_WARNINGS": "1",
}


def _run(
    args: list[str],
    env: Mapping[str, str],
    log: Path,
    timeout: float,
    watchdog: _Watchdog | None = None,
) -> int:
    """The CLI's exit status; its output goes to *log*. Stopped (its whole process group) at
    *timeout*, when *watchdog* finds a stalled resource, or when this process is interrupted."""
    with log.open("ab") as out:
        out.write(f"\n$ cdk {' '.join(args)}\n".encode())
        out.flush()
        process = subprocess.Popen(
            CDK + args,
            cwd=ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        try:
            while process.poll() is None:
                if time.monotonic() > deadline:
                    raise RehearsalError(f"cdk {args[0]} still running after {timeout:.0f} s")
                if watchdog is not None and watchdog.stalled:
                    break
                time.sleep(0.5)
        finally:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        return int(process.returncode)


class Cdk:
    """The CDK CLI against one ministack, logging to *log*."""

    def __init__(self, ministack: Ministack, log: Path) -> None:
        self.ministack = ministack
        self.log = log
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
        self.env = {**base, **QUIET, **ministack.environment()}

    def synth(
        self, outdir: Path, context: Mapping[str, str], env: Mapping[str, str] | None = None
    ) -> None:
        """``cdk synth`` with *context*; *env* adds to the CLI's environment."""
        args = ["synth", "--quiet", "--no-notices", "--output", str(outdir)]
        for key, value in context.items():
            args += ["--context", f"{key}={value}"]
        if _run(args, {**self.env, **(env or {})}, self.log, timeout=300) != 0:
            raise RehearsalError(f"cdk synth failed (see {self.log})")

    def bootstrap(self, assembly: Path) -> None:
        # The CLI finds the account and region itself, as it does for a user.
        args = ["bootstrap", "--app", str(assembly), "--no-notices"]
        if _run(args, self.env, self.log, timeout=300) != 0:
            raise RehearsalError(f"cdk bootstrap failed (see {self.log})")

    def deploy(self, assembly: Path, stacks: list[str]) -> None:
        args = ["deploy", "--all", "--app", str(assembly), "--no-notices"]
        args += ["--require-approval", "never", "--progress", "events"]
        self._watched(args, assembly, stacks, "deploy")

    def destroy(self, assembly: Path, stacks: list[str]) -> None:
        args = ["destroy", "--all", "--force", "--app", str(assembly), "--no-notices"]
        self._watched(args, assembly, stacks, "destroy")

    def _watched(self, args: list[str], assembly: Path, stacks: list[str], what: str) -> None:
        watchdog = _Watchdog(self.ministack, assembly, stacks)
        watchdog.start()
        try:
            code = _run(args, self.env, self.log, timeout=900, watchdog=watchdog)
        finally:
            watchdog.stop()
        if watchdog.stalled:
            raise RehearsalError(watchdog.stalled)
        if code != 0:
            raise RehearsalError(
                f"cdk {what} failed: {first_failure(self.ministack, stacks)} (see {self.log})"
            )


def construct_path(cdk_path: str) -> str:
    """A resource's ``aws:cdk:path`` inside its stack, as the rehearsal names it
    (``Rotation/Rotate/Function/Resource``): without the stack and without the ``Default``
    segments (the app hands its API to the library's OriginLock under the id ``Default``, which
    CDK leaves out of logical ids too)."""
    inside = cdk_path.split("/", 1)[-1]
    return "/".join(part for part in inside.split("/") if part != "Default")


def resource_paths(assembly: Path, stack: str) -> dict[str, str]:
    """Logical id -> construct path (``Edge/OriginHeaderValue/Resource``) of a stack."""
    template = json.loads((assembly / f"{stack}.template.json").read_text())
    paths = {}
    for logical_id, resource in template["Resources"].items():
        path = (resource.get("Metadata") or {}).get("aws:cdk:path", logical_id)
        paths[logical_id] = construct_path(path)
    return paths


class _Watchdog(threading.Thread):
    """Stops a deploy whose custom resource has not answered in :data:`STALL_SECONDS`."""

    def __init__(self, ministack: Ministack, assembly: Path, stacks: list[str]) -> None:
        super().__init__(daemon=True)
        self.ministack = ministack
        self.assembly = assembly
        self.stacks = stacks
        self.stalled: str | None = None
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def run(self) -> None:
        cloudformation = self.ministack.client("cloudformation")
        since: dict[tuple[str, str], float] = {}
        while not self._halt.wait(1.0):
            for stack in self.stacks:
                # ministack lists a resource only once it exists: its events show the wait.
                try:
                    events = cloudformation.describe_stack_events(StackName=stack)["StackEvents"]
                except (ClientError, BotoCoreError):  # not created yet, gone, or busy
                    continue
                latest: dict[str, dict[str, Any]] = {}
                for event in events:  # newest first
                    latest.setdefault(event["LogicalResourceId"], event)
                for logical_id, event in latest.items():
                    key = (stack, logical_id)
                    busy = str(event["ResourceStatus"]).endswith("_IN_PROGRESS")
                    if not (busy and str(event["ResourceType"]).startswith("Custom::")):
                        since.pop(key, None)
                        continue
                    started = since.setdefault(key, time.monotonic())
                    if time.monotonic() - started > STALL_SECONDS:
                        self.stalled = self._describe(stack, event)
                        return

    def _describe(self, stack: str, resource: dict[str, Any]) -> str:
        logical_id = resource["LogicalResourceId"]
        path = resource_paths(self.assembly, stack).get(logical_id, logical_id)
        why = function_error(self.ministack, self.assembly, stack, logical_id)
        if why.startswith("its function logged no error"):
            # A function that cannot even start logs nothing: ministack says why in its log.
            why = self.ministack.last_log_line("ERROR [lambda]") or why
        return (
            f"custom resource {stack}/{path} ({resource['ResourceType']}) has not answered in "
            f"{STALL_SECONDS:.0f} s, deploy stopped: {why}"
        )


def function_error(ministack: Ministack, assembly: Path, stack: str, logical_id: str) -> str:
    """The last error line its provider function logged, for a custom resource's failure."""
    template = json.loads((assembly / f"{stack}.template.json").read_text())["Resources"]
    token = template.get(logical_id, {}).get("Properties", {}).get("ServiceToken", {})
    function_id = (token.get("Fn::GetAtt") or [None])[0] if isinstance(token, dict) else None
    logging_config = template.get(function_id or "", {}).get("Properties", {}).get("LoggingConfig")
    group_id = ((logging_config or {}).get("LogGroup") or {}).get("Ref")
    if not group_id:
        return "its function logged nothing readable"
    try:
        group = ministack.client("cloudformation").describe_stack_resource(
            StackName=stack, LogicalResourceId=group_id
        )["StackResourceDetail"]["PhysicalResourceId"]
        events = ministack.client("logs").filter_log_events(logGroupName=group)["events"]
    except Exception as exc:
        return f"its logs cannot be read ({type(exc).__name__})"
    for event in reversed(events):
        message = " ".join(str(event["message"]).split())
        if any(mark in message for mark in ("ERROR", "Error", "Traceback", "errorMessage")):
            return message[:300]
    return "its function logged no error (no answer sent?)"


def first_failure(ministack: Ministack, stacks: list[str]) -> str:
    """The first resource that failed, with CloudFormation's reason, across *stacks*."""
    cloudformation = ministack.client("cloudformation")
    for stack in stacks:
        try:
            events = cloudformation.describe_stack_events(StackName=stack)["StackEvents"]
        except ClientError:
            continue
        for event in reversed(events):  # oldest first
            if str(event.get("ResourceStatus", "")).endswith("_FAILED"):
                reason = " ".join(str(event.get("ResourceStatusReason", "")).split())[:300]
                return (
                    f"{stack}/{event['LogicalResourceId']} ({event['ResourceType']}) "
                    f"{event['ResourceStatus']}: {reason}"
                )
    return "no resource reported a failure"
