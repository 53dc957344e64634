"""Edge-signed mode in the sandbox, as a user sees it: traffic through edges that run the real
CloudFront Function, each picking up a KeyValueStore write at its own moment; the rotation,
revoke all and the CLI against it."""

from __future__ import annotations

import json
import time

import pytest
import requests
from typer.testing import CliRunner

from originlock.cli import app
from originlock.demo import REVOKE_PHASE, DemoSettings, Scenario, build_report
from originlock.document import key_id, parse_token
from originlock.sandbox import Sandbox
from originlock.traffic import Traffic, rejected
from tokens.document import TokenDocument

pytestmark = pytest.mark.e2e

SHORT = DemoSettings(baseline=0.5, pause=0.3, tail=0.5, time_limit=120.0, execution_timeout=90.0)


def document(sb: Sandbox) -> TokenDocument:
    value = sb.client("ssm").get_parameter(Name=sb.parameter_name, WithDecryption=True)
    return TokenDocument.parse(value["Parameter"]["Value"])


def scenario(sb: Sandbox) -> Scenario:
    traffic = Traffic(max_requests=5000, time_limit=SHORT.time_limit)
    return Scenario(sb, traffic, execution_timeout=SHORT.execution_timeout, settings=SHORT)


def printed_nothing_secret(sb: Sandbox, text: str) -> bool:
    return not any(value in text for value in sb.token_values())


def test_edge_rotation_through_skewed_edges_loses_nothing(sandbox: Sandbox) -> None:
    # Given legitimate traffic through every edge, two of whose clocks run 5 s off (the
    # tolerance is one 10 s window, less the time from signing to the authorizer's check, which
    # a cold instance on a loaded machine makes seconds), and edges that pick up a store write
    # at their own moment
    sb = sandbox
    sb.set_edge_skew(1, 5.0)
    sb.set_edge_skew(2, -5.0)
    play = scenario(sb)
    old = document(sb).current
    try:
        for index, url in enumerate(sb.edge_urls):
            play.traffic.start("legit", index, f"{url}/orders", 0.05)
        play.phase("rotation")

        # When a rotation runs
        run = play.run("rotation", lambda: play.start_rotation("e2e: skewed edges"))
        time.sleep(0.5)
        play.phase("")
    finally:
        play.traffic.stop()
        sb.set_edge_skew(1, 0.0)
        sb.set_edge_skew(2, 0.0)

    # Then it succeeded, not one legitimate request was refused, and every edge signs with
    # the new key, which the run named by its id only
    legit = play.records(kind="legit")
    assert run.outcome.status == "SUCCEEDED", run.outcome.cause
    assert len(legit) > 50 and rejected(legit) == []
    new = document(sb).current
    assert new != old and run.key_id == key_id(str(new))
    assert sb.key_value_store.propagated()
    with requests.Session() as session:
        session.trust_env = False
        assert all(session.get(url).status_code == 200 for url in sb.edge_urls)


def test_edge_an_edge_clock_beyond_the_tolerance_is_refused_until_it_is_right(
    sandbox: Sandbox,
) -> None:
    sb = sandbox
    with requests.Session() as session:
        session.trust_env = False
        # Given an edge whose clock runs 25 s ahead: its tokens name a window two ahead
        sb.set_edge_skew(0, 25.0)
        try:
            refused = session.get(f"{sb.edge_urls[0]}/clock").status_code
        finally:
            sb.set_edge_skew(0, 0.0)
        # When its clock is right again, its next token is a new value: allowed at once
        allowed = session.get(f"{sb.edge_urls[0]}/clock").status_code

    assert (refused, allowed) == (403, 200)


def test_edge_revoke_all_refuses_a_leaked_key_within_r(sandbox: Sandbox) -> None:
    # Given traffic through every edge, and the signing key leaked: an attacker sends it, and
    # tokens it signs, straight at the API
    sb = sandbox
    play = scenario(sb)
    try:
        play.start_traffic()
        play.phase(REVOKE_PHASE)

        # When revoke all is requested
        play.leak_and_revoke()
        play.phase("")
    finally:
        play.traffic.stop()
    report = build_report(play)

    # Then the key stopped working within R counted from the request, no attacker got in,
    # and legitimate requests were refused only in the revoke window (edges that had not
    # picked up the new key yet)
    revoke = report["revoke"]
    assert revoke["replayed"] > 0 and revoke["accepted_after_bound"] == 0
    assert 0 <= revoke["measured_bound_s"] <= revoke["stated_bound_s"] == sb.timings.revoke_bound()
    assert report["attacker"]["accepted"] == 0
    assert report["legit"]["rejected_outside_revoke_window"] == 0
    assert play.runs[0].outcome.status == "SUCCEEDED"
    assert printed_nothing_secret(sb, json.dumps(report))


def test_edge_status_shows_the_mode_and_key_ids_never_a_key(sandbox: Sandbox) -> None:
    sb = sandbox
    current = document(sb)
    runner = CliRunner()

    human = runner.invoke(app, ["--sandbox", "status"])
    as_json = runner.invoke(app, ["--sandbox", "status", "--json"])

    assert human.exit_code == 0 and as_json.exit_code == 0, human.stderr + as_json.stderr
    kid = key_id(str(current.current))
    assert "edge-signed" in human.stdout and f"key id {kid}" in human.stdout
    assert "signs at the edge (no static origin header)" in human.stdout
    data = json.loads(as_json.stdout)
    assert data["token"]["mode"] == "edge-signed"
    assert data["token"]["key_ids"]["current"] == kid
    assert data["distribution"]["sends"] == []
    assert printed_nothing_secret(sb, human.stdout + human.stderr + as_json.stdout)


def test_edge_the_origin_sees_only_signed_values_and_never_a_viewers(sandbox: Sandbox) -> None:
    # Given a viewer who sends the origin header itself, through CloudFront
    sb = sandbox
    with requests.Session() as session:
        session.trust_env = False
        answer = session.get(sb.edge_url, headers={sb.header_name: "chosen-by-the-viewer"})

    # Then the origin received a token the edge signed with the current key, not the viewer's
    assert answer.status_code == 200
    captured = parse_token(sb.captured_origin_header())
    assert captured is not None and captured.kid == key_id(str(document(sb).current))
    # and the distribution carries no static origin header (it would win over the function's)
    config = sb.client("cloudfront").get_distribution_config(Id=sb.distribution_id)
    origin = config["DistributionConfig"]["Origins"]["Items"][0]
    assert not (origin.get("CustomHeaders") or {}).get("Items")
    assert document(sb).mode == "edge-signed"


def test_edge_rotate_wait_names_the_new_key_by_its_id(sandbox: Sandbox) -> None:
    sb = sandbox

    result = CliRunner().invoke(app, ["--sandbox", "rotate", "--wait", "--reason", "e2e"])

    assert result.exit_code == 0, result.stderr
    current = document(sb).current
    assert f"(key id {key_id(str(current))})" in result.stdout
    assert "SwitchOrigin" in result.stdout and "CheckDeployed" in result.stdout
    assert printed_nothing_secret(sb, result.stdout + result.stderr)
