"""Every path of the real rotation workflow, executed by moto's Step Functions interpreter."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from originlock.operations import steps_of
from originlock.retry_budget import happy_path, load_definition, steps_on
from tests.statemachine.conftest import REVOKE_ALL, REVOKE_PREVIOUS, ROTATE, SCHEDULED
from tokens.document import TokenDocument, fingerprint, generate_token

pytestmark = pytest.mark.statemachine

PAYLOADS = {"rotate": ROTATE, "revoke all": REVOKE_ALL, "revoke previous": REVOKE_PREVIOUS}
# Every step each path invokes, in order (test_the_crash_table_covers_every_step checks them
# against the ASL). validate and acquire_lock fail before ChooseMode, into Fail states that
# do not depend on the mode: they are crashed once, under rotate.
CRASH_STEPS = {
    "rotate": [
        "validate",
        "acquire_lock",
        "stage",
        "switch",
        "check_deployed",
        "verify",
        "promote",
        "retire",
        "reset_authorizer_caches:after-retire",
        "release_lock",
    ],
    "revoke all": [
        "stage",
        "reset_authorizer_caches:before-switch",
        "switch",
        "revoke_all",
        "reset_authorizer_caches:after-revoke",
        "check_deployed",
        "verify",
        "release_lock",
    ],
    "revoke previous": [
        "revoke_previous",
        "reset_authorizer_caches:after-revoke",
        "release_lock",
    ],
}
REVOKE_WRITES = {"revoke all": "revoke_all", "revoke previous": "revoke_previous"}
# Steps that only read: a crash before them and a crash after them leave the same state (only
# the answer is lost), so each is crashed once, after.
READ_ONLY_STEPS = {"validate", "check_deployed", "verify"}
CRASHES = [
    pytest.param(mode, step, when, id=f"{mode.replace(' ', '_')}-{step}-{when}")
    for mode, steps in CRASH_STEPS.items()
    for step in steps
    for when in (("after",) if step in READ_ONLY_STEPS else ("before", "after"))
]


def document_with(current: str, previous: str | None = None, pending: str | None = None) -> str:
    return TokenDocument(current=current, previous=previous, pending=pending).evolve().to_json()


def test_rotation_promotes_a_new_value_and_retires_the_old(make_world: Any, capfd: Any) -> None:
    # Given a deployment whose CloudFront sends the current value
    world = make_world()
    before = world.document()

    # When a manual rotation runs to the end
    arn, result = world.run(ROTATE)

    # Then CloudFront sends a new value, which is current; the old one is retired
    assert result["status"] == "SUCCEEDED", result
    after = world.document()
    assert after.current not in (None, before.current)
    assert after.previous is None and after.pending is None
    assert world.configured_value() == after.current
    assert world.in_flight() == {after.current}
    # A retired value is refused by every instance once its cache ages out (not leaked:
    # no forced refresh), at once by a fresh instance
    world.lambdas.recycle(world.deployment.authorizer_function)
    assert not world.authorize(str(before.current))
    # Steps report fingerprints only
    assert world.step_output(arn, "Promote")["promote"]["result"]["current"] == fingerprint(
        after.current
    )
    states = world.entered_states(arn)
    assert states[0] == "Validate" and states[-1] == "Done"
    assert len(states) < 100
    world.assert_invariants(arn, output="".join(capfd.readouterr()))


def test_two_rotations_back_to_back_each_replace_the_value(make_world: Any, capfd: Any) -> None:
    world = make_world()
    values = [world.document().current]

    first, r1 = world.run(SCHEDULED)
    values.append(world.document().current)
    second, r2 = world.run(ROTATE)
    values.append(world.document().current)

    assert r1["status"] == r2["status"] == "SUCCEEDED"
    assert len(set(values)) == 3
    assert world.document().generation >= 7
    world.assert_invariants(first, second, output="".join(capfd.readouterr()))


def test_precondition_failed_is_retried_with_a_fresh_etag(make_world: Any) -> None:
    # Given someone else updates the distribution between our read and our update, twice
    world = make_world()
    world.edges.foreign_updates_before_next = 2

    arn, result = world.run(ROTATE)

    assert result["status"] == "SUCCEEDED", result
    assert world.edges.precondition_failures == 2
    assert world.configured_value() == world.document().current
    world.assert_invariants(arn)


# Botocore's standard mode makes 1 + 3 attempts per call (max_attempts counts retries), so
# this many throttles fail one invocation of the step whose call CloudFront throttles first.
SDK_ATTEMPTS = 4


@pytest.mark.parametrize(
    ("payload", "state"),
    [
        pytest.param(SCHEDULED, "Stage", id="scheduled_rotation-Stage"),
        pytest.param(REVOKE_PREVIOUS, "RevokePrevious", id="revoke_previous-RevokePrevious"),
    ],
)
def test_cloudfront_throttling_beyond_the_sdk_retries_is_retried_by_the_workflow(
    make_world: Any, payload: dict[str, Any], state: str
) -> None:
    # Given CloudFront throttles every attempt the first invocation of *state* makes (its
    # GetDistributionConfig is the execution's first CloudFront call)
    current, previous = generate_token(), generate_token()
    world = make_world(edges=2, initial_document=document_with(current, previous))
    world.edges.throttle_next = SDK_ATTEMPTS

    # When the execution runs
    arn, result = world.run(payload)

    # Then the state's own Retry gets past the throttling and the execution completes
    assert result["status"] == "SUCCEEDED", result
    assert world.edges.throttled == SDK_ATTEMPTS
    [step] = [s for s in steps_of(world.history(arn)) if s.name == state]
    assert step.status == "succeeded" and step.retries >= 1, step
    after = world.document()
    if state == "Stage":
        assert after.current not in (current, previous)
        assert world.configured_value() == after.current
    else:
        assert (after.current, after.previous) == (current, None)
    world.assert_invariants(arn)


def test_only_the_header_value_changes_in_the_distribution(make_world: Any) -> None:
    # Given a distribution with a second origin that carries no origin header
    other = {
        "Id": "static",
        "DomainName": "static.example.com",
        "CustomHeaders": {"Quantity": 1, "Items": [{"HeaderName": "x-other", "HeaderValue": "v"}]},
        "CustomOriginConfig": {
            "HTTPPort": 80,
            "HTTPSPort": 443,
            "OriginProtocolPolicy": "https-only",
        },
    }
    world = make_world(extra_origins=[other])
    before = world.distribution_config()

    arn, result = world.run(ROTATE)

    # Then the config is the same except the header value on the origin that carries it
    assert result["status"] == "SUCCEEDED", result
    after = world.distribution_config()
    new_value = world.document().current
    origin = after["Origins"]["Items"][0]
    assert origin["CustomHeaders"]["Items"][0]["HeaderValue"] == new_value
    origin["CustomHeaders"]["Items"][0]["HeaderValue"] = before["Origins"]["Items"][0][
        "CustomHeaders"
    ]["Items"][0]["HeaderValue"]
    assert after == before
    world.assert_invariants(arn)


# Elements no SDK knows (yet): one at the top of the configuration, one inside the origin.
UNKNOWN_TOP = "<FutureEdgeFeature><Enabled>true</Enabled><Mode>strict</Mode></FutureEdgeFeature>"
UNKNOWN_ORIGIN = "<FutureOriginSetting>42</FutureOriginSetting>"


def canonical_without_header_value(raw: str) -> str:
    """The XML, canonicalized, with every HeaderValue blanked (the one thing a rotation may
    change)."""
    from xml.etree import ElementTree

    root = ElementTree.fromstring(raw)  # noqa: S314 - the test's own XML
    for element in root.iter():
        if element.tag.endswith("}HeaderValue") or element.tag == "HeaderValue":
            element.text = ""
    return ElementTree.canonicalize(ElementTree.tostring(root, encoding="unicode"))


def test_an_element_the_sdk_does_not_know_survives_a_rotation(make_world: Any) -> None:
    # Given a distribution on which someone turned on CloudFront features newer than any SDK
    # the rotate function carries (moto's own renderer would drop them, as botocore does: the
    # sandbox's CloudFront keeps the configuration's XML as it was sent, as CloudFront does)
    from rotate.adapters import keep_raw_distribution_config

    world = make_world()
    client = world.session.client("cloudfront")
    keep_raw_distribution_config(client)
    dist_id = world.deployment.distribution_id
    raw = client.get_distribution_config(Id=dist_id)["_originlock_raw_body"].decode()
    edited = raw.replace("</DistributionConfig>", f"{UNKNOWN_TOP}</DistributionConfig>")
    edited = edited.replace("<CustomHeaders>", f"{UNKNOWN_ORIGIN}<CustomHeaders>", 1)
    assert edited.count("Future") == 4
    world.edges.raw_configs[dist_id] = edited
    before = world.document()

    # When a rotation runs (it reads the configuration, edits the header, sends it back)
    arn, result = world.run(ROTATE)

    # Then the configuration CloudFront got is the same XML, but for the header's value
    assert result["status"] == "SUCCEEDED", result
    after = world.edges.raw_configs[dist_id]
    assert after != edited and UNKNOWN_TOP in after and UNKNOWN_ORIGIN in after
    assert canonical_without_header_value(after) == canonical_without_header_value(edited)
    assert world.configured_value() == world.document().current != before.current
    world.assert_invariants(arn)


def test_deploy_timeout_keeps_everything_accepted_and_the_next_run_resumes(
    make_world: Any,
) -> None:
    # Given CloudFront never finishes deploying, and a 2 s deploy timeout
    world = make_world(rotate_env={"DEPLOY_TIMEOUT_SECONDS": "2"})
    old = world.document().current
    world.edges.never_deploy = True

    arn, result = world.run(ROTATE)

    # Then the execution fails with a named error and both values stay accepted
    assert result["status"] == "FAILED"
    assert result["error"] == "DeploymentTimeoutError"
    stuck = world.document()
    assert stuck.current == old and stuck.pending is not None
    assert world.authorize(str(old)) and world.authorize(stuck.pending)

    # When CloudFront catches up and the next execution runs
    world.edges.never_deploy = False
    world.edges.finish_deployments()
    arn2, result2 = world.run(ROTATE)

    # Then it resumes with the staged value rather than staging another
    assert result2["status"] == "SUCCEEDED", result2
    assert world.step_output(arn2, "Stage")["stage"]["result"]["reused"] is True
    assert world.document().current == stuck.pending
    world.assert_invariants(arn, arn2)


def test_the_crash_table_covers_every_step() -> None:
    definition = load_definition()
    for mode, payload in PAYLOADS.items():
        steps = steps_on(definition, happy_path(definition, payload), tagged=True)
        skipped = [] if mode == "rotate" else ["validate", "acquire_lock"]
        assert steps == skipped + CRASH_STEPS[mode], mode
    states = definition["States"]
    # The steps crashed only under rotate fail into Fail states, whatever the mode
    assert states[states["Validate"]["Catch"][0]["Next"]]["Type"] == "Fail"
    assert states[states["AcquireLock"]["Catch"][0]["Next"]]["Type"] == "Fail"


def accepted(document: TokenDocument) -> set[str]:
    return {v.decode() for _, v in document.accepted()}


@pytest.mark.parametrize(("mode", "step", "when"), CRASHES)
def test_a_crash_in_any_step_keeps_the_invariants_and_a_rerun_completes(
    make_world: Any, capfd: Any, mode: str, step: str, when: str
) -> None:
    # Given a current and a previous value, and the rotate function crashing once in *step*,
    # before it runs or after its side effects (as a Lambda timeout would)
    current, previous = generate_token(), generate_token()
    world = make_world(
        edges=2, deploy_window=(0.1, 0.4), initial_document=document_with(current, previous)
    )
    # and two warm authorizer instances that trust both values (the sampler refreshes one)
    world.prewarm_authorizers(2, current)
    before = world.document()
    updates = world.edges.updates
    payload = PAYLOADS[mode]
    world.lambdas.crash_steps[step] = when

    # When the workflow runs
    arn, result = world.run(payload)

    # Then it fails with the crash, down the path the runbook states
    assert step not in world.lambdas.crash_steps, "the crash was never injected"
    assert result["status"] == "FAILED" and result["error"] == "SandboxCrashError", result
    states = world.entered_states(arn)
    stale_lock = (step, when) in (("acquire_lock", "after"), ("release_lock", "before"))
    if step == "validate":
        assert states == ["Validate", "Rejected"]
    elif step == "acquire_lock":
        assert states == ["Validate", "AcquireLock", "FailBeforeLock"]
    elif step == "release_lock":
        assert states[-1] == "ReleaseLock"  # the last task has no Catch: it fails there
    else:
        assert states[-2:] == ["ReleaseLockAfterFailure", "Failed"]
        # A revoke's failure replaces the instances and empties the cache, whatever failed
        assert ("ResetCachesAfterFailure" in states) == (mode != "rotate")
    # A crash between taking and releasing the lock leaves it to a stopped holder
    assert world.lock_holder() == (arn if stale_lock else None)
    if step in ("validate", "acquire_lock"):
        assert world.document() == before
    middle = world.document()
    removed = accepted(before) - accepted(middle)
    if mode in REVOKE_WRITES:
        steps, write = CRASH_STEPS[mode], REVOKE_WRITES[mode]
        written = steps.index(step) > steps.index(write) or (step == write and when == "after")
        leaked = {current, previous} if mode == "revoke all" else {previous}
        assert removed == (leaked if written else set())
        # A value the revoke removed is refused at once, even though the run failed: the
        # instances that trusted it were replaced
        assert not any(any(world.authorize_everywhere(value)) for value in removed)

    # When the same command runs again
    world.edges.finish_deployments()
    arn2, result2 = world.run(payload)

    # Then it completes
    assert result2["status"] == "SUCCEEDED", result2
    if stale_lock:
        lock = world.step_output(arn2, "AcquireLock")["lock"]["result"]
        assert lock["took_over"] == arn.rsplit(":", 1)[-1]
    final = world.document()
    assert final.pending is None and final.previous is None
    assert world.configured_value() == final.current
    assert world.lock_holder() is None
    revoked: frozenset[str] = frozenset()
    if mode == "rotate":
        assert final.current not in (current, previous)
    elif mode == "revoke previous":
        assert final.current == current
        assert world.edges.updates == updates  # no CloudFront change, in either run
        assert not any(world.authorize_everywhere(previous))
        assert world.authorize(current)
    else:
        assert accepted(final) == {final.current}
        assert final.current not in (current, previous)
        assert not any(world.authorize_everywhere(current) + world.authorize_everywhere(previous))
        # Each revoke all refuses what it found accepted, but its new value, as soon as it
        # has written: edges not yet switched send those and are refused (the price)
        revoked = frozenset((accepted(before) | accepted(middle)) - {final.current})
    world.assert_invariants(arn, arn2, output="".join(capfd.readouterr()), revoked=revoked)


def test_a_second_trigger_while_one_runs_is_refused(make_world: Any) -> None:
    world = make_world(deploy_window=(1.0, 2.0))
    first = world.start(SCHEDULED)
    # Wait until the first holds the lock (generously: the machine may be loaded)
    deadline = time.monotonic() + 30
    while "ChooseMode" not in world.entered_states(first):
        assert time.monotonic() < deadline, "the first execution never took the lock"
        world.sample()
    assert world.entered_states(first)[-1] not in ("Done", "Failed")

    second, refused = world.run(ROTATE)
    done = world.wait(first)

    assert refused["status"] == "FAILED"
    assert refused["error"] == "RotationInProgressError"
    assert "Stage" not in world.entered_states(second)
    assert done["status"] == "SUCCEEDED"
    world.assert_invariants(first, second)


def test_simultaneous_triggers_let_exactly_one_proceed(make_world: Any) -> None:
    world = make_world(deploy_window=(0.2, 0.5))
    arns: list[str] = []
    barrier = threading.Barrier(2)

    def trigger(payload: dict[str, Any]) -> None:
        barrier.wait()
        arns.append(world.start(payload))

    threads = [threading.Thread(target=trigger, args=(p,)) for p in (SCHEDULED, ROTATE)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results = [world.wait(arn) for arn in arns]

    # Exactly one rotates; the other is refused (the manual one: RotationInProgressError) or
    # yields (the scheduled one: it ends at Skipped, having changed nothing)
    rotated = [arn for arn in arns if "Stage" in world.entered_states(arn)]
    assert len(rotated) == 1
    (other,) = set(arns) - set(rotated)
    outcome = results[arns.index(other)]
    if world.entered_states(other)[-1] == "Skipped":
        assert outcome["status"] == "SUCCEEDED"
        assert json.loads(outcome["input"])["trigger"] == "schedule"
    else:
        assert (outcome["status"], outcome.get("error")) == ("FAILED", "RotationInProgressError")
    assert results[arns.index(rotated[0])]["status"] == "SUCCEEDED"
    world.assert_invariants(*arns)


def test_revoke_previous_drops_it_at_once_without_touching_cloudfront(make_world: Any) -> None:
    current, previous = generate_token(), generate_token()
    world = make_world(initial_document=document_with(current, previous))
    assert world.authorize(previous)  # a warm instance trusts it
    updates = world.edges.updates

    arn, result = world.run(REVOKE_PREVIOUS)

    assert result["status"] == "SUCCEEDED", result
    assert world.document().previous is None
    assert world.edges.updates == updates
    # Warm instances were replaced: the revoked value is refused at once
    assert not world.authorize(previous)
    assert world.authorize(current)
    world.assert_invariants(arn)


def test_revoke_previous_refuses_when_cloudfront_still_sends_it(make_world: Any) -> None:
    current, previous = generate_token(), generate_token()
    world = make_world(initial_document=document_with(current, previous))
    cf = world.client("cloudfront")
    response = cf.get_distribution_config(Id=world.deployment.distribution_id)
    config = response["DistributionConfig"]
    config["Origins"]["Items"][0]["CustomHeaders"]["Items"][0]["HeaderValue"] = previous
    cf.update_distribution(
        Id=world.deployment.distribution_id, IfMatch=response["ETag"], DistributionConfig=config
    )
    world.edges.finish_deployments()

    arn, result = world.run(REVOKE_PREVIOUS)

    assert result["status"] == "FAILED"
    assert result["error"] == "PreviousStillInUseError"
    assert world.document().previous == previous
    world.assert_invariants(arn)


def test_revoke_all_replaces_the_leaked_value_and_stops_accepting_it(make_world: Any) -> None:
    leaked, older = generate_token(), generate_token()
    world = make_world(initial_document=document_with(leaked, older))
    assert world.authorize(leaked)
    created = world.lambdas.instances_created.get(world.deployment.authorizer_function, 0)

    arn, result = world.run(REVOKE_ALL)

    # Then only the new value is accepted; warm authorizer instances were replaced
    assert result["status"] == "SUCCEEDED", result
    document = world.document()
    assert {v.decode() for _, v in document.accepted()} == {document.current}
    assert document.current not in (leaked, older)
    assert world.configured_value() == document.current
    assert not world.authorize(leaked) and not world.authorize(older)
    assert world.lambdas.instances_created[world.deployment.authorizer_function] > created
    # Edges not yet switched sent the leaked value and were refused: the documented price
    world.assert_invariants(arn, revoked=frozenset({leaked}))


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"mode": "rotate", "revoke": "all"},
        {"mode": "revoke"},
        {"mode": "revoke", "revoke": "everything"},
        {"mode": "rotate", "distribution_id": "EOTHER"},
        {"mode": "rotate", "trigger": "cron"},
        {"mode": "rotate", "reason": "x" * 1000},
        ["rotate"],
        '"rotate"',  # a JSON string, not an object
    ],
)
def test_bad_input_fails_at_once_and_changes_nothing(make_world: Any, payload: Any) -> None:
    world = make_world(edges=1)
    before = world.document()

    arn, result = world.run(payload)

    assert result["status"] == "FAILED"
    assert result["error"] == "InvalidInputError"
    assert world.entered_states(arn) == ["Validate", "Rejected"]
    assert world.document() == before
    world.assert_invariants(arn)


def test_an_out_of_band_header_stops_the_run_before_anything_is_removed(
    make_world: Any,
) -> None:
    # Given someone changed the header on the distribution to a value we do not know
    world = make_world()
    before = world.document()
    cf = world.client("cloudfront")
    response = cf.get_distribution_config(Id=world.deployment.distribution_id)
    config = response["DistributionConfig"]
    stranger = generate_token()
    config["Origins"]["Items"][0]["CustomHeaders"]["Items"][0]["HeaderValue"] = stranger
    cf.update_distribution(
        Id=world.deployment.distribution_id, IfMatch=response["ETag"], DistributionConfig=config
    )
    world.edges.finish_deployments()  # and it reached every edge

    arn, result = world.run(ROTATE)

    assert result["status"] == "FAILED"
    assert result["error"] == "UnknownOriginHeaderError"
    assert world.document() == before
    assert world.configured_value() == stranger
    assert "origin(s) api" in result["cause"]
    assert "Stage" in world.entered_states(arn) and "SwitchOrigin" not in world.entered_states(arn)
    # The stranger is sent and refused (the operator's incident, not ours); every value the
    # document knows stays accepted, and none of them, nor the stranger, reaches the history
    assert world.seen_values >= {stranger}
    world.assert_invariants(arn, revoked=frozenset({stranger}))


def test_cost_per_rotation_matches_the_documented_formula(make_world: Any) -> None:
    # docs/runbook.md: transitions = 16 + 3N and Lambda invocations = 9 + N for N polls
    world = make_world(deploy_window=(1.5, 2.5))
    invocations = world.lambdas.invocations.get(world.deployment.rotate_function, 0)

    arn, result = world.run(ROTATE)

    assert result["status"] == "SUCCEEDED"
    states = world.entered_states(arn)
    polls = states.count("CheckDeployed")
    assert polls >= 2
    assert len(states) == 16 + 3 * polls
    used = world.lambdas.invocations[world.deployment.rotate_function] - invocations
    assert used == 9 + polls


def test_a_lock_left_by_a_stopped_execution_is_taken_over(make_world: Any) -> None:
    # Given a lock left behind by an execution that is no longer running
    world = make_world(edges=2)
    gone = world.start(REVOKE_PREVIOUS)
    world.wait(gone)
    world.client("ssm").put_parameter(
        Name=f"{world.deployment.parameter_name}.lock",
        Value=json.dumps({"execution": gone, "mode": "rotate"}),
        Type="String",
    )

    arn, result = world.run(ROTATE)

    assert result["status"] == "SUCCEEDED", result
    lock = world.step_output(arn, "AcquireLock")["lock"]["result"]
    assert lock["took_over"] == gone.rsplit(":", 1)[-1]
    world.assert_invariants(arn)


def test_a_failure_after_revoking_still_refreshes_the_authorizers(make_world: Any) -> None:
    # Given a revoke all whose function crashes right after it removed the leaked value
    leaked = generate_token()
    world = make_world(initial_document=document_with(leaked))
    world.prewarm_authorizers(2, leaked)
    assert all(world.authorize_everywhere(leaked))
    world.lambdas.crash_steps["revoke_all"] = "after"

    arn, result = world.run(REVOKE_ALL)

    # Then the execution fails, but the caches were still reset: the leaked value is refused
    assert result["status"] == "FAILED" and result["error"] == "SandboxCrashError"
    assert "ResetCachesAfterFailure" in world.entered_states(arn)
    assert leaked not in {v.decode() for _, v in world.document().accepted()}
    assert not any(world.authorize_everywhere(leaked))
    world.assert_invariants(arn, revoked=frozenset({leaked}))


class _Probe:
    """A loopback HTTP server answering fixed statuses: CloudFront's URL and the API's URL.

    A list of statuses is answered in turn, its last one from then on."""

    def __init__(self, statuses: dict[str, int | list[int]]) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        answers = {path: list(s) if isinstance(s, list) else [s] for path, s in statuses.items()}
        self.requests: dict[str, int] = {}
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                queue = answers.get(self.path, [404])
                requests[self.path] = requests.get(self.path, 0) + 1
                self.send_response(queue.pop(0) if len(queue) > 1 else queue[0])
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(
    ("through_cloudfront", "direct", "outcome"),
    [
        (200, 403, "SUCCEEDED"),
        (403, 403, "VerificationFailedError"),
        (200, 200, "VerificationFailedError"),
    ],
)
def test_the_verification_probe_gates_the_promotion(
    make_world: Any, through_cloudfront: int, direct: int, outcome: str
) -> None:
    # Given probe URLs: through CloudFront must answer, straight at the API must refuse
    probe = _Probe({"/cf": through_cloudfront, "/api": direct})
    try:
        world = make_world(
            edges=2, rotate_env={"PROBE_URL": probe.url("/cf"), "API_URL": probe.url("/api")}
        )
        before = world.document()

        arn, result = world.run(ROTATE)
    finally:
        probe.close()

    verify = world.step_output(arn, "Verify")
    if outcome == "SUCCEEDED":
        assert result["status"] == "SUCCEEDED", result
        checks = verify["verify"]["result"]
        assert checks == {"checked": True, "through_cloudfront": 200, "direct_to_api": 403}
    else:
        # Then nothing is promoted: both values stay accepted, the next run resumes
        assert result["status"] == "FAILED" and result["error"] == outcome
        after = world.document()
        assert after.current == before.current and after.pending is not None
    world.assert_invariants(arn)


def test_the_verification_probe_outlasts_a_cold_start(make_world: Any) -> None:
    # Given a CloudFront URL that fails twice (a cold authorizer behind it timing out, then a
    # 502) before it answers
    probe = _Probe({"/cf": [0, 502, 200], "/api": 403})
    try:
        world = make_world(
            edges=2, rotate_env={"PROBE_URL": probe.url("/cf"), "API_URL": probe.url("/api")}
        )
        arn, result = world.run(ROTATE)
    finally:
        probe.close()

    # Then Verify asked again and the rotation completed
    assert result["status"] == "SUCCEEDED", result
    assert probe.requests["/cf"] == 3
    world.assert_invariants(arn)
