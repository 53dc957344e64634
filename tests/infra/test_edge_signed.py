"""``cdk synth -c lockMode=edge-signed``: the function, the store, the association, the key
resources and the rotation's settings and grants; no key and no static origin header anywhere.

The scans that hold for every configuration (cdk-nag, cfn-lint, checkov, the secret scan) run
on this one too (``SCANNED`` in conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudfront as cloudfront

from infra.config import AppConfig, AttachConfig, ConfigError
from originlock.cdk import AuthorizerProps, LockMode, OriginLock, PropsError
from originlock.cdk.props import EdgeSigningProps
from tests.infra.conftest import (
    ATTACH_CONTEXT,
    Synth,
    as_list,
    cdk_json_context,
    flatten,
    grants,
    of_type,
)

TOKEN_LIKE = re.compile(r"[A-Za-z0-9_-]{40,}")


def only(resources: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    assert len(resources) == 1, list(resources)
    return next(iter(resources.items()))


def role_of(template: dict[str, Any], function_logical_id: str) -> str:
    role = template["Resources"][function_logical_id]["Properties"]["Role"]
    return str(role["Fn::GetAtt"][0])


def function_named(template: dict[str, Any], fragment: str) -> str:
    found = [
        logical_id
        for logical_id in of_type(template, "AWS::Lambda::Function")
        if fragment in logical_id
    ]
    assert len(found) == 1, found
    return found[0]


def test_the_function_signs_with_the_store_on_cloudfront_js_2(edge: Synth) -> None:
    template = edge.json()
    store_id, store = only(of_type(template, "AWS::CloudFront::KeyValueStore"))
    _, function = only(of_type(template, "AWS::CloudFront::Function"))
    config = function["Properties"]["FunctionConfig"]

    assert config["Runtime"] == "cloudfront-js-2.0"
    assert config["KeyValueStoreAssociations"] == [
        {"KeyValueStoreARN": {"Fn::GetAtt": [store_id, "Arn"]}}
    ]
    assert function["Properties"]["AutoPublish"] is True
    code = function["Properties"]["FunctionCode"]
    # The header and the window filled in, within CloudFront's 10 KB, and no key in it
    assert "const HEADER_NAME = 'x-cf-api-gateway-token';" in code
    assert "parseInt('60', 10)" in code
    assert len(code.encode()) <= 10 * 1024
    assert not TOKEN_LIKE.search(code)
    # The store starts empty: its key is written at run time, never by the template
    assert "ImportSource" not in store["Properties"]


def test_the_distribution_runs_the_function_and_sends_no_static_header(edge: Synth) -> None:
    template = edge.json()
    function_id, _ = only(of_type(template, "AWS::CloudFront::Function"))
    _, distribution = only(of_type(template, "AWS::CloudFront::Distribution"))
    config = distribution["Properties"]["DistributionConfig"]

    for origin in config["Origins"]:
        assert "OriginCustomHeaders" not in origin
    # and the origin request policy forwards the function's header (every viewer header but
    # Host: the managed AllViewerExceptHostHeader policy)
    assert config["DefaultCacheBehavior"]["OriginRequestPolicyId"] == (
        "b689b0a8-53d0-40ab-baf2-68738e2966ac"
    )
    behaviours = [config["DefaultCacheBehavior"], *config.get("CacheBehaviors", [])]
    for behaviour in behaviours:
        assert behaviour["FunctionAssociations"] == [
            {
                "EventType": "viewer-request",
                "FunctionARN": {"Fn::GetAtt": [function_id, "FunctionARN"]},
            }
        ]
    # and the header mode's drift guard is gone: nothing sets a static header
    assert of_type(template, "Custom::OriginlockOriginHeaderValue") == {}


def test_a_key_is_put_in_place_before_and_after_the_distribution(edge: Synth) -> None:
    template = edge.json()
    distribution_id, distribution = only(of_type(template, "AWS::CloudFront::Distribution"))
    keys = of_type(template, "Custom::OriginlockSigningKey")
    assert len(keys) == 2
    before = next(k for k, r in keys.items() if "DistributionLogicalId" in r["Properties"])
    after = next(k for k, r in keys.items() if "DistributionId" in r["Properties"])

    # Before: the distribution waits for it (a stack switching modes gets its key first)
    assert keys[before]["Properties"]["DistributionLogicalId"] == distribution_id
    assert before in as_list(distribution["DependsOn"])
    # and so does the function's code (a refused deploy fails before the code changes)
    _, function = only(of_type(template, "AWS::CloudFront::Function"))
    assert before in as_list(function["DependsOn"])
    # After: it names the distribution (a first create gets its key there)
    assert keys[after]["Properties"]["DistributionId"] == {"Ref": distribution_id}

    # Both wait a rotation's stage wait between the document and the store
    authorizer = template["Resources"][function_named(template, "AuthorizerFunction")]
    env = authorizer["Properties"]["Environment"]["Variables"]
    stage_wait = (
        int(env["TOKEN_CACHE_MAX_AGE_SECONDS"]) + int(env["TOKEN_REFRESH_MIN_INTERVAL_SECONDS"]) + 5
    )
    for key in keys.values():
        properties = key["Properties"]
        assert properties["StageWaitSeconds"] == str(stage_wait)
        assert properties["PropagationSeconds"] == "60"
        assert (properties["WindowSeconds"], properties["ToleranceWindows"]) == ("60", "1")
    # and the provider function outlives both waits
    provider = template["Resources"][function_named(template, "EdgeSigningProvider")]
    assert provider["Properties"]["Timeout"] > stage_wait + 60


def test_the_authorizer_result_ttl_is_at_most_the_window(edge: Synth) -> None:
    template = edge.json()
    _, authorizer = only(of_type(template, "AWS::ApiGatewayV2::Authorizer"))

    assert authorizer["Properties"]["AuthorizerResultTtlInSeconds"] == 60


def test_the_rotation_runs_in_edge_signed_mode(edge: Synth) -> None:
    template = edge.json()
    store_id, _ = only(of_type(template, "AWS::CloudFront::KeyValueStore"))
    _, function = only(of_type(template, "AWS::CloudFront::Function"))
    rotate = template["Resources"][function_named(template, "RotateFunction")]
    env = rotate["Properties"]["Environment"]["Variables"]

    assert env["LOCK_MODE"] == "edge-signed"
    assert env["KVS_ARN"] == {"Fn::GetAtt": [store_id, "Arn"]}
    assert env["EDGE_FUNCTION_NAME"] == function["Properties"]["Name"]
    assert (env["EDGE_WINDOW_SECONDS"], env["EDGE_TOLERANCE_WINDOWS"]) == ("60", "1")
    assert env["EDGE_PROPAGATION_SECONDS"] == "60"
    # No distribution deployment to wait for: short polls and drain
    assert (env["POLL_INTERVAL_SECONDS"], env["DRAIN_SECONDS"]) == ("5", "60")
    # SigV4A for the store's API: the awscrt layer
    layers = [flatten(layer) for layer in rotate["Properties"]["Layers"]]
    assert any("AwscrtLayer" in layer for layer in layers), layers


def test_the_rotate_role_writes_the_store_and_never_updates_the_distribution(
    edge: Synth,
) -> None:
    template = edge.json()
    store_id, _ = only(of_type(template, "AWS::CloudFront::KeyValueStore"))
    function_id, _ = only(of_type(template, "AWS::CloudFront::Function"))
    granted = grants(template, role_of(template, function_named(template, "RotateFunction")))
    actions = {action for statement in granted for action in statement}

    kvs = frozenset(
        {
            "cloudfront-keyvaluestore:DescribeKeyValueStore",
            "cloudfront-keyvaluestore:GetKey",
            "cloudfront-keyvaluestore:UpdateKeys",
        }
    )
    assert granted[kvs] == [f"<{store_id}.Arn>"]
    test = frozenset({"cloudfront:DescribeFunction", "cloudfront:TestFunction"})
    assert granted[test] == [f"<{function_id}.FunctionARN>"]
    assert "cloudfront:UpdateDistribution" not in actions
    assert not {a for a in actions if a.startswith(("wafv2:", "s3:"))}


def test_the_signing_key_provider_may_do_only_its_job(edge: Synth) -> None:
    template = edge.json()
    store_id, _ = only(of_type(template, "AWS::CloudFront::KeyValueStore"))
    provider = function_named(template, "EdgeSigningProvider")
    granted = grants(template, role_of(template, provider))
    actions = sorted({action for statement in granted for action in statement})

    assert actions == [
        "cloudformation:DescribeStackResource",
        "cloudformation:DescribeStacks",
        "cloudfront-keyvaluestore:DescribeKeyValueStore",
        "cloudfront-keyvaluestore:GetKey",
        "cloudfront-keyvaluestore:UpdateKeys",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "ssm:GetParameter",
        "ssm:PutParameter",
        "states:DescribeExecution",
    ]
    kvs = next(
        resources
        for statement, resources in granted.items()
        if "cloudfront-keyvaluestore:UpdateKeys" in statement
    )
    assert kvs == [f"<{store_id}.Arn>"]


def test_lock_mode_is_checked_in_the_context() -> None:
    context = {**cdk_json_context(), "lockMode": "signed"}
    with pytest.raises(ConfigError, match="lockMode must be header or edge-signed"):
        AppConfig.from_context(context.get)
    attach = {**cdk_json_context(), **ATTACH_CONTEXT, "lockMode": "edge-signed"}
    with pytest.raises(ConfigError, match="not supported in attach mode"):
        AttachConfig.from_context(attach.get)


def _api(stack: Stack) -> apigwv2.HttpApi:
    return apigwv2.HttpApi(stack, "Api")


def test_the_library_refuses_what_edge_signed_mode_cannot_do() -> None:
    app = App()
    stack = Stack(app, "Lib", env={"region": "eu-west-1", "account": "111111111111"})
    api = _api(stack)
    # A result TTL longer than the window: a cached Allow would outlive its token
    with pytest.raises(PropsError, match="exceeds the edge-signed window"):
        OriginLock(
            stack,
            "Lock",
            existing_api_obj=api,
            lock_mode=LockMode.EDGE_SIGNED,
            authorizer_props=AuthorizerProps(results_cache_ttl=Duration.minutes(5)),
        )
    # Your own distribution: the association is not managed yet
    distribution = cloudfront.CfnDistribution(
        stack,
        "Mine",
        distribution_config=cloudfront.CfnDistribution.DistributionConfigProperty(
            enabled=True,
            default_cache_behavior=cloudfront.CfnDistribution.DefaultCacheBehaviorProperty(
                target_origin_id="api", viewer_protocol_policy="https-only"
            ),
        ),
    )
    with pytest.raises(PropsError, match="needs the distribution OriginLock makes"):
        OriginLock(
            stack,
            "Lock2",
            existing_api_obj=api,
            existing_distribution_obj=distribution,
            lock_mode=LockMode.EDGE_SIGNED,
        )
    # Edge settings without the mode, and a window out of range
    with pytest.raises(PropsError, match="needs lock_mode"):
        OriginLock(stack, "Lock3", existing_api_obj=api, edge_signing_props=EdgeSigningProps())
    with pytest.raises(PropsError, match="window"):
        OriginLock(
            stack,
            "Lock4",
            existing_api_obj=api,
            lock_mode=LockMode.EDGE_SIGNED,
            edge_signing_props=EdgeSigningProps(window=Duration.seconds(5)),
        )


def test_header_mode_is_unchanged(synth: Synth) -> None:
    # The default configuration has none of edge-signed mode's resources
    template = synth.json()
    for resource_type in (
        "AWS::CloudFront::Function",
        "AWS::CloudFront::KeyValueStore",
        "Custom::OriginlockSigningKey",
    ):
        assert of_type(template, resource_type) == {}
    rotate = template["Resources"][function_named(template, "RotateFunction")]
    assert "LOCK_MODE" not in json.dumps(rotate["Properties"]["Environment"])


def test_render_function_code_works_without_functions_on_sys_path(tmp_path: Path) -> None:
    """``cdk synth -c lockMode=edge-signed`` runs the app without ``functions/`` on sys.path
    (pytest puts it there): the function's code must still render (it failed with
    ``No module named 'tokens'``)."""
    script = (
        "import importlib.util, sys\n"
        "assert importlib.util.find_spec('tokens') is None, 'functions/ is on sys.path'\n"
        "from originlock.cdk.edge_signing import render_function_code\n"
        "code = render_function_code('X-Cf-Api-Gateway-Token', 60)\n"
        "assert \"'x-cf-api-gateway-token'\" in code and \"'60'\" in code\n"
        "try:\n"
        "    render_function_code('x-a', 5)\n"
        "except ValueError as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-P", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "EdgeFunctionConfigError"
