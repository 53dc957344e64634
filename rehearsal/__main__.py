"""``python -m rehearsal`` (``make rehearse``): deploy originlock into ministack, check it, tear
it all down, and write the least-privilege table into docs/security.md.

Every step prints one line; a failure prints one line naming the resource or the call, and
the run still tears everything down (also on Ctrl-C and SIGTERM). docs/rehearsal.md says what
each step does and which ministack defects it works around.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

from originlock.bundle import AWSCRT_LAYER_ENV
from rehearsal import checks, edge, least_privilege
from rehearsal.cdk import Cdk
from rehearsal.deployment import STACK, WAF_STACK, Deployment, zip_bytes
from rehearsal.emulator import Ministack
from rehearsal.errors import RehearsalError
from rehearsal.exercises import Baseline, edge_exercises, exercises
from rehearsal.loopback import EdgeRelay, ResponseCollector

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".tools"
MINISTACK_PYTHON = TOOLS / "ministack" / "bin" / "python"
POWERTOOLS_LAYER = TOOLS / "rehearsal" / "powertools-layer"
# The awscrt layer for ministack's interpreter (the product's lock, this machine's wheel).
AWSCRT_LAYER = TOOLS / "rehearsal" / "awscrt-layer"
RUN_DIR = TOOLS / "rehearsal" / "run"
SECURITY_DOC = ROOT / "docs" / "security.md"

# Settings a user may give any deploy (cdk.json context), chosen for a rehearsal: the
# authorizer reads SSM through the SDK (ministack runs no Lambda extension), and the
# workflow's waits are seconds instead of minutes.
CONTEXT = {
    "authorizerTokenSource": "sdk",
    "authorizerTokenMaxAgeSeconds": "2",
    "authorizerRefreshIntervalSeconds": "1",
    # A small fleet: the SSM read budget then leaves the 2 s max age as it is (with Lambda's
    # 1,000 default it would raise it to 125 s, and the stage wait to 131 s).
    "authorizerMaxInstances": "8",
    "authorizerCacheTtlSeconds": "1",
    "drainSeconds": "1",
    "pollIntervalSeconds": "1",
}
# The second deploy changes the distribution (no web ACL), so the drift guard runs again.
SECOND_CONTEXT = {**CONTEXT, "wafEnabled": "false"}

T = TypeVar("T")


class Run:
    """Prints a line per step; times the whole run."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.current = "start"
        self.passed = 0

    def step(self, what: str, action: Callable[[], T]) -> T:
        self.current = what
        began = time.monotonic()
        result = action()
        self.passed += 1
        print(f"  ok  {what} ({time.monotonic() - began:.1f} s)", flush=True)
        return result

    def note(self, line: str) -> None:
        print(f"      {line}", flush=True)


@contextlib.contextmanager
def interrupted_by_signals() -> Iterator[None]:
    """Ctrl-C and SIGTERM (CI's timeout, a kill) unwind the run, so teardown runs. SIGINT is
    set explicitly: a process started in the background of a script inherits it ignored."""

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def publish_powertools(ministack: Ministack, assembly: Path) -> str:
    """The Powertools layer under the ARN the template names (account, name and version)."""
    template = (assembly / f"{STACK}.template.json").read_text()
    found = re.search(r":(\d{12}):layer:(AWSLambdaPowertools[\w-]+):(\d+)", template)
    if found is None:
        raise RehearsalError("the template names no Powertools layer")
    account, name, version = found.group(1), found.group(2), int(found.group(3))
    if not (POWERTOOLS_LAYER / "python").is_dir():
        raise RehearsalError(f"no Powertools layer built at {POWERTOOLS_LAYER} (make rehearse)")
    # The layer's owner: ministack treats an account id as that account's root key.
    lambda_ = ministack.client(
        "lambda",
        aws_access_key_id=account,
        aws_secret_access_key="rehearsal",  # noqa: S106 - ministack's dummy credentials
    )
    placeholder = zip_of({"python/README.txt": "an earlier version of the layer\n"})
    content = zip_bytes(POWERTOOLS_LAYER)
    published = 0
    while published < version:
        published = lambda_.publish_layer_version(
            LayerName=name,
            Content={"ZipFile": content if published + 1 == version else placeholder},
            CompatibleRuntimes=["python3.13"],
            CompatibleArchitectures=["arm64"],
        )["Version"]
    lambda_.add_layer_version_permission(
        LayerName=name,
        VersionNumber=version,
        StatementId="everyone",
        Action="lambda:GetLayerVersion",
        Principal="*",
    )
    return f"{name}:{version} (account {account})"


def zip_of(files: dict[str, str]) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def complete_distribution(deployment: Deployment) -> str:
    """ministack keeps the origin as the template gave it, without the ports and timeouts
    CloudFront fills in; botocore then refuses the rotate function's UpdateDistribution.
    Put in CloudFront's defaults, the header value unchanged."""
    config, etag = deployment.distribution_config()
    for origin in config["Origins"]["Items"]:
        custom = origin.get("CustomOriginConfig")
        if custom is not None:
            for key, default in (
                ("HTTPPort", 80),
                ("HTTPSPort", 443),
                ("OriginReadTimeout", 30),
                ("OriginKeepaliveTimeout", 5),
            ):
                custom.setdefault(key, default)
    deployment.client("cloudfront").update_distribution(
        Id=deployment.distribution_id, IfMatch=etag, DistributionConfig=config
    )
    return "origin ports and timeouts filled in"


def point_probes_home(deployment: Deployment, edge: EdgeRelay) -> str:
    """The Verify step probes the stack's URLs (AWS host names): give it the local ones."""
    deployment.update_environment(
        "Rotation/Rotate/Function", {"PROBE_URL": edge.url, "API_URL": deployment.api_url}
    )
    return f"PROBE_URL={edge.url} API_URL={deployment.api_url}"


def smoke(ministack: Ministack, deployment: Deployment, edge: EdgeRelay) -> None:
    command = [
        sys.executable,
        "-m",
        "originlock.smoke",
        "--endpoint-url",
        ministack.endpoint,
        "--region",
        "us-east-1",
        "--stack",
        deployment.stack,
        "--api-url",
        deployment.api_url,
        "--cloudfront-url",
        edge.url,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(ministack.environment())
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    for line in result.stdout.splitlines():
        print(f"      | {line}", flush=True)
    if result.returncode != 0:
        # A failed check is a line of its report; an error, a line on stderr.
        said = result.stderr.strip().splitlines() or result.stdout.strip().splitlines()
        last = said[-1] if said else "no output"
        raise RehearsalError(f"originlock.smoke failed: {last}")


def rehearse(run: Run, update_docs: bool) -> None:
    if not MINISTACK_PYTHON.exists():
        raise RehearsalError(f"ministack is not installed at {MINISTACK_PYTHON} (make rehearse)")
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    RUN_DIR.mkdir(parents=True)
    log = RUN_DIR / "cdk.log"
    with ExitStack() as stack:
        ministack = Ministack(MINISTACK_PYTHON, RUN_DIR)
        stack.callback(ministack.stop)
        run.step(f"ministack on {ministack.endpoint} (IAM enforced, TLS)", ministack.start)
        cdk = Cdk(ministack, log)
        first, second = RUN_DIR / "cdk.out", RUN_DIR / "cdk.out.second"
        run.step("cdk synth", lambda: cdk.synth(first, CONTEXT))
        run.note(run.step("Powertools layer", lambda: publish_powertools(ministack, first)))
        run.step("cdk bootstrap", lambda: cdk.bootstrap(first))
        run.step("cdk deploy --all", lambda: cdk.deploy(first, [WAF_STACK, STACK]))
        deployment = Deployment(ministack, first)
        initial = deployment.sends()

        edge = EdgeRelay(ministack.port, ministack.certificate)
        edge.host = deployment.client("cloudfront").get_distribution(Id=deployment.distribution_id)[
            "Distribution"
        ]["DomainName"]
        edge.start()
        stack.callback(edge.stop)
        collector = ResponseCollector(ministack.certificate, RUN_DIR / "ministack-tls/server.key")
        collector.start()
        stack.callback(collector.stop)
        run.note(run.step("distribution completed", lambda: complete_distribution(deployment)))
        run.note(run.step("Verify's probes", lambda: point_probes_home(deployment, edge)))

        for line in run.step("blog test", lambda: checks.blog_test(deployment, edge.url)):
            run.note(line)
        baseline = Baseline.capture(deployment)
        for line in run.step(
            "rotate steps, real role", lambda: checks.rotate_steps(deployment, baseline)
        ):
            run.note(line)
        run.step("smoke test (originlock.smoke)", lambda: smoke(ministack, deployment, edge))

        baseline = Baseline.capture(deployment)
        proof = least_privilege.Proof(
            deployment, exercises(deployment, baseline, collector), say=run.note
        )
        rows = run.step("least-privilege proof", proof.run)
        record_table(run, rows, least_privilege.HEADER_TABLE, update_docs)

        before = run.step(
            "a rotation stopped after its switch",
            lambda: checks.interrupted_after_switch(deployment),
        )
        if before == initial:
            raise RehearsalError("CloudFront sends the first deploy's value before the second")
        run.step("cdk synth (no web ACL)", lambda: cdk.synth(second, SECOND_CONTEXT))
        run.step("cdk deploy (changes the distribution)", lambda: cdk.deploy(second, [STACK]))
        run.note(run.step("header kept", lambda: checks.header_kept(deployment, before)))
        run.step("cdk destroy --all", lambda: cdk.destroy(first, [STACK, WAF_STACK]))
        run.note(run.step("torn down", lambda: checks.destroyed(deployment)))
        rehearse_edge_signed(run, cdk, collector, deployment.template, update_docs)


def rehearse_edge_signed(
    run: Run,
    cdk: Cdk,
    collector: ResponseCollector,
    header_template: dict[str, Any],
    update_docs: bool,
) -> None:
    """Edge-signed mode, deployed into the same ministack once header mode is torn down."""
    ministack = cdk.ministack
    assembly = RUN_DIR / "cdk.out.edge-signed"
    if not (AWSCRT_LAYER / "python" / "awscrt").is_dir():
        raise RehearsalError(f"no awscrt layer built at {AWSCRT_LAYER} (make rehearse)")
    run.step(
        "cdk synth -c lockMode=edge-signed",
        lambda: cdk.synth(
            assembly, {**CONTEXT, **edge.EDGE_CONTEXT}, {AWSCRT_LAYER_ENV: str(AWSCRT_LAYER)}
        ),
    )
    run.step("cdk deploy --all (edge-signed)", lambda: cdk.deploy(assembly, [WAF_STACK, STACK]))
    deployment = Deployment(ministack, assembly)
    for line in run.step("store, function, distribution", lambda: edge.resources(deployment)):
        run.note(line)
    for line in run.step("blog test (edge-signed)", lambda: edge.blog_test(deployment)):
        run.note(line)
    run.note("through CloudFront: not exercised (ministack's functions cannot read a store)")
    # ministack has no TestFunction: the deployment wait checks the propagation wait only.
    run.step(
        "rotate function without EDGE_FUNCTION_NAME",
        lambda: deployment.update_environment(
            "Rotation/Rotate/Function", {"EDGE_FUNCTION_NAME": None}
        ),
    )
    baseline = Baseline.capture(deployment)
    for line in run.step(
        "rotate steps, real role (edge-signed)", lambda: checks.rotate_steps(deployment, baseline)
    ):
        run.note(line)

    baseline = Baseline.capture(deployment)
    roles = least_privilege.roles_differing(
        least_privilege.grants(header_template), least_privilege.grants(deployment.template)
    )
    run.note(f"roles granted differently from header mode: {', '.join(roles)}")
    proof = least_privilege.Proof(
        deployment, edge_exercises(deployment, baseline, collector), say=run.note, roles=roles
    )
    rows = run.step("least-privilege proof (edge-signed)", proof.run)
    record_table(run, rows, least_privilege.EDGE_TABLE, update_docs)
    run.step("cdk destroy --all (edge-signed)", lambda: cdk.destroy(assembly, [STACK, WAF_STACK]))
    run.note(run.step("torn down (edge-signed)", lambda: checks.destroyed(deployment)))


def record_table(
    run: Run, rows: list[least_privilege.Row], markers: tuple[str, str], update_docs: bool
) -> None:
    """Write the proof's table into docs/security.md, or (``--check-docs``) fail if it differs."""
    text = least_privilege.table(rows)
    edge_signed = markers == least_privilege.EDGE_TABLE
    which = "edge-signed least-privilege" if edge_signed else "least-privilege"
    if update_docs and least_privilege.write_table(SECURITY_DOC, text, markers):
        run.note(f"docs/security.md: {which} table updated")
    elif (committed := least_privilege.committed_table(SECURITY_DOC, markers)) != text:
        diff = difflib.unified_diff(
            committed.splitlines(), text.splitlines(), "docs/security.md", "this run", lineterm=""
        )
        raise RehearsalError(
            f"docs/security.md's {which} table differs from this run's"
            " (make rehearse rewrites it):\n" + "\n".join(diff)
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rehearsal", description=__doc__)
    parser.add_argument(
        "--check-docs",
        action="store_true",
        help="fail if docs/security.md's table differs instead of rewriting it",
    )
    options = parser.parse_args(argv)
    run = Run()
    print("rehearsal: originlock deployed into ministack, IAM enforced", flush=True)
    try:
        with interrupted_by_signals():
            rehearse(run, update_docs=not options.check_docs)
    except KeyboardInterrupt:
        print(f"rehearsal interrupted at {run.current}; torn down", file=sys.stderr)
        return 130
    except Exception as exc:
        text = str(exc) if isinstance(exc, RehearsalError) else f"{type(exc).__name__}: {exc}"
        # Only the rehearsal's own errors carry detail lines (the table's diff); anything else
        # is one line, whitespace folded, cut at 600 characters.
        headline, _, detail = (
            text.partition("\n") if isinstance(exc, RehearsalError) else (text, "", "")
        )
        print(f"rehearsal failed at {run.current}: {' '.join(headline.split())[:600]}", flush=True)
        if detail:
            print(detail, flush=True)
        print(f"rehearsal: {run.passed} passed, 1 failed", flush=True)
        return 1
    finally:
        if os.environ.get("REHEARSAL_KEEP") != "1":  # the run's logs, for a failure's details
            shutil.rmtree(RUN_DIR, ignore_errors=True)
    print(f"rehearsal passed in {time.monotonic() - run.started:.0f} s", flush=True)
    print(f"rehearsal: {run.passed} passed, 0 failed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
