"""The smoke test of a deployed originlock: ``python -m originlock.smoke --stack Originlock``.

What a user checks after ``make deploy`` (``make smoke``), in one command, against whatever the
target options name (the CLI's: ``--stack``, ``--sandbox``, ``--endpoint-url``, ``--region``,
``--profile``):

1. the blog's test: straight to the API without the header (401) and with a wrong value
   (403), and through CloudFront (200);
2. a rotation with a little traffic through CloudFront: it succeeds and no request is refused;
3. ``revoke previous``: it succeeds and the previous value is no longer accepted;
4. no token value in the Step Functions history of those executions, nor in the functions'
   logs (CloudWatch Logs of the stack's log groups; for a sandbox in this process, its
   captured function output).

Each check prints one line; the exit status is 1 if any failed. No token value is ever printed:
values are read only to be searched for.

``--api-url`` and ``--cloudfront-url`` replace the stack's URLs for an emulator whose host
names do not resolve (the deploy rehearsal passes its loopback ones); HTTPS is verified with
``AWS_CA_BUNDLE`` when it is set, as the SDK does.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from originlock import operations
from originlock.errors import OriginlockError, describe_error
from originlock.target import Target, TargetOptions, resolve
from originlock.traffic import REQUEST_TIMEOUT, Sent, rejected, status_counts

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
# A little traffic: a few requests a second through CloudFront while the rotation runs.
CLIENTS = 2
INTERVAL = 0.5
MAX_REQUESTS = 20_000  # per client: a bound whatever the rotation's length
LogSource = Callable[[float], Iterable[str]]


@dataclass
class Check:
    name: str
    outcome: str
    detail: str

    def line(self) -> str:
        return f"  {self.outcome:<4}  {self.name:<36} {self.detail}"


@dataclass
class Report:
    target: str
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.outcome != FAIL for check in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "passed": self.passed,
            "checks": [asdict(check) for check in self.checks],
        }


class SmokeFailure(OriginlockError):
    """A check cannot go on (the message is its detail)."""


# -- HTTP -------------------------------------------------------------------------------------
def http_pool() -> Any:
    import urllib3

    bundle = os.environ.get("AWS_CA_BUNDLE") or None
    return urllib3.PoolManager(ca_certs=bundle, retries=False, timeout=REQUEST_TIMEOUT)


def get_status(pool: Any, url: str, headers: dict[str, str] | None = None) -> int:
    """The status of a GET, 0 when no HTTP answer came."""
    import urllib3

    try:
        return int(pool.request("GET", url, headers=headers or {}, redirect=False).status)
    except urllib3.exceptions.HTTPError:
        return 0


class Load:
    """A few clients, each sending a GET every *interval* seconds until stopped; bounded in
    count (:data:`MAX_REQUESTS` each) and time (*time_limit*)."""

    def __init__(self, url: str, clients: int, interval: float, time_limit: float) -> None:
        self.url = url
        self.interval = interval
        self.deadline = time.monotonic() + time_limit
        self.records: list[Sent] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(clients)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def _client(self, number: int) -> None:
        pool = http_pool()
        for _ in range(MAX_REQUESTS):
            if self._stop.is_set() or time.monotonic() >= self.deadline:
                return
            started = time.monotonic()
            status = get_status(pool, self.url)
            with self._lock:
                self.records.append(Sent("cloudfront", number, started, time.monotonic(), status))
            self._stop.wait(self.interval)

    def stop(self) -> list[Sent]:
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT + 5)
        with self._lock:
            return list(self.records)


# -- the checks ---------------------------------------------------------------------------------
def blog_test(pool: Any, target: Target, api_url: str, cloudfront_url: str) -> list[Check]:
    wrong = secrets.token_urlsafe(32)  # a well-formed value nobody accepts
    cases = [
        ("direct to the API, no header", api_url, {}, 401),
        ("direct to the API, a wrong value", api_url, {target.header_name: wrong}, 403),
        ("through CloudFront", cloudfront_url, {}, 200),
    ]
    checks = []
    for name, url, headers, expected in cases:
        status = get_status(pool, url, headers)
        outcome = PASS if status == expected else FAIL
        checks.append(Check(name, outcome, f"{status or 'no answer'} (expected {expected})"))
    return checks


def _wait(target: Target, started: operations.Started, timeout: float) -> operations.Outcome:
    interval = 1.0 if target.local else 5.0
    outcome = operations.watch(target, started.execution_arn, interval=interval, timeout=timeout)
    if not outcome.finished:
        raise SmokeFailure(f"{started.name} still {outcome.status} after {timeout:.0f} s")
    return outcome


def _outcome_text(outcome: operations.Outcome) -> str:
    seconds = ""
    if outcome.steps and outcome.steps[0].started and outcome.steps[-1].ended:
        elapsed = (outcome.steps[-1].ended - outcome.steps[0].started).total_seconds()
        seconds = f" in {elapsed:.1f} s"
    if outcome.succeeded:
        return f"{outcome.status}{seconds}"
    return f"{outcome.status} at {outcome.failed_step}: {outcome.error}: {outcome.cause}"


def rotation_under_traffic(
    target: Target, cloudfront_url: str, timeout: float, started_names: list[str]
) -> Check:
    name = "rotation under traffic"
    before = operations.read_document(target)
    load = Load(cloudfront_url, CLIENTS, INTERVAL, time_limit=timeout + 30)
    load.start()
    try:
        started = operations.start(
            target, "rotate", reason="smoke test", requested_by="originlock smoke"
        )
        started_names.append(started.execution_arn)
        outcome = _wait(target, started, timeout)
        time.sleep(2 * INTERVAL)  # a last request or two after the end
    finally:
        records = load.stop()
    refused = rejected(records)
    traffic = f"{len(records)} requests, {len(refused)} refused {status_counts(records)}"
    if not outcome.succeeded:
        return Check(name, FAIL, f"{_outcome_text(outcome)}; {traffic}")
    after = operations.read_document(target)
    if after.current == before.current:
        return Check(name, FAIL, f"{_outcome_text(outcome)} but current did not change; {traffic}")
    if not records or refused:
        return Check(name, FAIL, f"{_outcome_text(outcome)}; {traffic}")
    current = after.fingerprints()["current"]
    return Check(name, PASS, f"{_outcome_text(outcome)}; {traffic}; current is now {current}")


def revoke_previous(
    target: Target, pool: Any, cloudfront_url: str, timeout: float, started_names: list[str]
) -> Check:
    name = "revoke previous"
    started = operations.start(
        target, "revoke", scope="previous", reason="smoke test", requested_by="originlock smoke"
    )
    started_names.append(started.execution_arn)
    outcome = _wait(target, started, timeout)
    if not outcome.succeeded:
        return Check(name, FAIL, _outcome_text(outcome))
    document = operations.read_document(target)
    if document.previous is not None:
        return Check(name, FAIL, f"{_outcome_text(outcome)} but previous is still accepted")
    status = get_status(pool, cloudfront_url)
    if status != 200:
        return Check(name, FAIL, f"{_outcome_text(outcome)}; through CloudFront then: {status}")
    return Check(name, PASS, f"{_outcome_text(outcome)}; previous dropped; CloudFront 200")


def stack_log_groups(target: Target) -> list[str]:
    """The log groups of the target's stack (its functions', the state machine's, the API's)."""
    if not target.stack_name:
        return []
    groups = []
    pages = target.client("cloudformation").get_paginator("list_stack_resources")
    for page in pages.paginate(StackName=target.stack_name):
        for resource in page["StackResourceSummaries"]:
            if resource["ResourceType"] == "AWS::Logs::LogGroup":
                groups.append(str(resource["PhysicalResourceId"]))
    return groups


def cloudwatch_logs(target: Target, groups: list[str]) -> LogSource:
    """Every message logged since a moment, in *groups* (CloudWatch Logs)."""

    def read(since: float) -> list[str]:
        logs = target.client("logs")
        messages: list[str] = []
        for group in groups:
            kwargs: dict[str, Any] = {"logGroupName": group, "startTime": int(since * 1000)}
            while True:
                try:
                    page = logs.filter_log_events(**kwargs)
                except logs.exceptions.ResourceNotFoundException:
                    break  # nothing was ever written there
                messages += [str(event["message"]) for event in page["events"]]
                if not page.get("nextToken"):
                    break
                kwargs["nextToken"] = page["nextToken"]
        return messages

    return read


def settled_logs(source: LogSource, since: float, local: bool) -> list[str]:
    """Logs reach CloudWatch seconds after they are written: read until two reads agree."""
    messages = list(source(since))
    if local:
        return messages
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(5)
        again = list(source(since))
        if len(again) == len(messages):
            return again
        messages = again
    return messages


def history_text(target: Target, execution_arn: str) -> tuple[int, str]:
    events = operations.history_events(target, execution_arn)
    described = target.client("stepfunctions").describe_execution(executionArn=execution_arn)
    text = json.dumps([events, described], default=str)
    return len(events), text


def no_secrets(
    target: Target,
    values: set[str],
    executions: list[str],
    logs: LogSource | None,
    since: float,
    own_output: str,
) -> Check:
    name = "no secret in history or logs"
    if not values:
        return Check(name, FAIL, "no token value known to search for")
    events = 0
    found = []
    for arn in executions:
        count, text = history_text(target, arn)
        events += count
        if any(value in text for value in values):
            found.append(f"history of {arn.rsplit(':', 1)[-1]}")
    if any(value in own_output for value in values):
        found.append("this report")
    where = f"{len(values)} values in {events} history events of {len(executions)} executions"
    if logs is None:
        detail = f"{where}; logs not searched (no log source for this target)"
        return Check(name, FAIL if found else SKIP, ", ".join(found) or detail)
    messages = settled_logs(logs, since, target.local)
    if any(value in message for message in messages for value in values):
        found.append("function logs")
    if found:
        return Check(name, FAIL, f"a token value is in: {', '.join(found)}")
    return Check(name, PASS, f"{where} and {len(messages)} log lines")


def _values(*documents: Any) -> set[str]:
    return {value.decode() for document in documents for _, value in document.accepted()}


# -- running it ---------------------------------------------------------------------------------
def run(
    target: Target,
    *,
    api_url: str | None = None,
    cloudfront_url: str | None = None,
    logs: LogSource | None = None,
    timeout: float = 3600.0,
    say: Callable[[Check], None] = lambda check: None,
) -> Report:
    """Every check against *target*; *logs* replaces the CloudWatch Logs of its stack."""
    report = Report(target.description)

    def add(check: Check) -> None:
        report.checks.append(check)
        say(check)

    api_url = api_url or target.api_url
    cloudfront_url = cloudfront_url or target.cloudfront_url
    if not api_url or not cloudfront_url:
        raise SmokeFailure(
            f"{target.description} names no API or CloudFront URL: pass --api-url/--cloudfront-url"
        )
    if logs is None:
        groups = stack_log_groups(target)
        logs = cloudwatch_logs(target, groups) if groups else None
    since = time.time() - 5
    pool = http_pool()
    for check in blog_test(pool, target, api_url, cloudfront_url):
        add(check)
    first = operations.read_document(target)
    executions: list[str] = []
    try:
        add(rotation_under_traffic(target, cloudfront_url, timeout, executions))
        add(revoke_previous(target, pool, cloudfront_url, timeout, executions))
    except OriginlockError as exc:
        add(Check("rotation and revoke", FAIL, describe_error(exc)))
    last = operations.read_document(target)
    own = "\n".join(check.line() for check in report.checks)
    add(no_secrets(target, _values(first, last), executions, logs, since, own))
    return report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m originlock.smoke",
        description="Smoke-test a deployed originlock: the blog's test, a rotation under "
        "traffic, revoke previous, no secret in history or logs.",
    )
    parser.add_argument("--stack", default=os.environ.get("ORIGINLOCK_STACK"))
    parser.add_argument("--sandbox", action="store_true", help="the local sandbox")
    parser.add_argument("--endpoint-url", default=os.environ.get("ORIGINLOCK_ENDPOINT_URL"))
    parser.add_argument("--region")
    parser.add_argument("--profile")
    parser.add_argument("--api-url", help="instead of the stack's ApiUrl output")
    parser.add_argument("--cloudfront-url", help="instead of the stack's CloudFrontUrl output")
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds allowed per execution"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")
    return parser


def main(argv: list[str] | None = None, logs: LogSource | None = None) -> int:
    """Run the smoke test; *logs* is for a caller that holds a sandbox's function output."""
    options = _parser().parse_args(argv)
    try:
        target = resolve(
            TargetOptions(
                profile=options.profile,
                region=options.region,
                stack=options.stack,
                sandbox=options.sandbox,
                endpoint_url=options.endpoint_url,
            )
        )
        if not options.json:
            print(f"originlock smoke test: {target.description}", flush=True)
        report = run(
            target,
            api_url=options.api_url,
            cloudfront_url=options.cloudfront_url,
            logs=logs,
            timeout=options.timeout,
            say=(lambda check: None) if options.json else lambda c: print(c.line(), flush=True),
        )
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except Exception as exc:
        sys.stderr.write(f"error: {describe_error(exc)}\n")
        return 1
    if options.json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        failed = [c.name for c in report.checks if c.outcome == FAIL]
        verdict = f"failed: {', '.join(failed)}" if failed else "passed"
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        print(f"smoke test {verdict} ({len(report.checks)} checks, {stamp})", flush=True)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
