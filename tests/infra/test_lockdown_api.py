"""The locked-down HTTP API: the authorizer's configuration, routes, stage and function."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Match

from authorizer.settings import AuthorizerSettings
from originlock.bundle import functions_dir
from originlock.constants import POWERTOOLS_LAYER_NAME
from tests.infra.conftest import Synth, flatten, grants, of_type

pytestmark = pytest.mark.infra

HEADER = "x-cf-api-gateway-token"


def test_authorizer_is_a_cached_simple_lambda_authorizer_on_the_origin_header(
    synth: Synth,
) -> None:
    synth.template.has_resource_properties(
        "AWS::ApiGatewayV2::Authorizer",
        {
            "AuthorizerType": "REQUEST",
            "AuthorizerPayloadFormatVersion": "2.0",
            "EnableSimpleResponses": True,
            "IdentitySource": [f"$request.header.{HEADER}"],
            "AuthorizerResultTtlInSeconds": 300,
        },
    )
    [authorizer] = of_type(synth.json(), "AWS::ApiGatewayV2::Authorizer").values()
    uri = flatten(authorizer["Properties"]["AuthorizerUri"])
    assert synth.logical_id(synth.main.api.authorizer.function) in uri


def test_every_route_goes_through_the_authorizer(synth: Synth) -> None:
    template = synth.json()
    [authorizer_id] = of_type(template, "AWS::ApiGatewayV2::Authorizer")
    routes = of_type(template, "AWS::ApiGatewayV2::Route").values()
    assert {route["Properties"]["RouteKey"] for route in routes} == {"ANY /{proxy+}", "ANY /"}
    for route in routes:
        assert route["Properties"]["AuthorizationType"] == "CUSTOM"
        assert route["Properties"]["AuthorizerId"] == {"Ref": authorizer_id}


def test_default_stage_deploys_itself_and_logs_no_header(synth: Synth) -> None:
    synth.template.has_resource_properties(
        "AWS::ApiGatewayV2::Stage",
        {
            "StageName": "$default",
            "AutoDeploy": True,
            "AccessLogSettings": {"DestinationArn": Match.any_value(), "Format": Match.any_value()},
        },
    )
    [stage] = of_type(synth.json(), "AWS::ApiGatewayV2::Stage").values()
    log_format = stage["Properties"]["AccessLogSettings"]["Format"]
    assert "header" not in log_format.lower()
    assert "$context.authorizer.error" in json.loads(log_format).values()


def test_default_backend_is_the_hello_lambda(synth: Synth) -> None:
    backend = synth.main.api.backend
    assert backend is not None
    function = synth.resource(backend.function)["Properties"]
    code = function["Code"]["ZipFile"]
    # It never reads request headers (one of them is the secret), so never echoes them.
    assert 'event["headers"]' not in code and 'event.get("headers"' not in code
    integrations = of_type(synth.json(), "AWS::ApiGatewayV2::Integration").values()
    assert {i["Properties"]["IntegrationType"] for i in integrations} == {"AWS_PROXY"}


def test_backend_url_becomes_http_proxy_integrations(variant: Synth) -> None:
    integrations = of_type(variant.json(), "AWS::ApiGatewayV2::Integration").values()
    uris = {i["Properties"]["IntegrationUri"] for i in integrations}
    assert uris == {"https://backend.example.com/app/{proxy}", "https://backend.example.com/app/"}
    assert {i["Properties"]["IntegrationType"] for i in integrations} == {"HTTP_PROXY"}
    assert variant.main.api.backend is None


def authorizer_function(synth: Synth) -> dict[str, Any]:
    properties: dict[str, Any] = synth.resource(synth.main.api.authorizer.function)["Properties"]
    return properties


EXTENSION_LAYER = "AWS-Parameters-and-Secrets-Lambda-Extension-Arm64"


def layers(function: dict[str, Any]) -> list[str]:
    return [flatten(layer) for layer in function["Layers"]]


def test_authorizer_function_runtime_and_layers(synth: Synth) -> None:
    function = authorizer_function(synth)
    assert function["Handler"] == "authorizer.handler.lambda_handler"
    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    found = layers(function)
    assert any(re.search(rf":017000801446:layer:{POWERTOOLS_LAYER_NAME}:\d+$", x) for x in found)
    assert any(EXTENSION_LAYER in x for x in found)


@pytest.mark.parametrize("which", ["synth", "defaults"])
def test_authorizer_reserves_no_concurrency_by_default(
    which: str, request: pytest.FixtureRequest
) -> None:
    # A reservation must leave 100 unreserved executions in the account; a new account
    # often has 10 or 50 in all, so any default reservation would fail the first deploy.
    synthesized: Synth = request.getfixturevalue(which)
    assert "ReservedConcurrentExecutions" not in authorizer_function(synthesized)


def test_authorizer_reservation_is_a_setting(variant: Synth) -> None:
    assert authorizer_function(variant)["ReservedConcurrentExecutions"] == 25


def test_authorizer_reads_with_the_sdk_without_the_extension_layer(variant: Synth) -> None:
    function = authorizer_function(variant)
    env: dict[str, str] = function["Environment"]["Variables"]
    assert AuthorizerSettings.from_env(env).token_source == "sdk"
    assert not any(EXTENSION_LAYER in layer for layer in layers(function))
    assert not any(name.startswith("PARAMETERS_SECRETS_EXTENSION_") for name in env)
    # The Powertools layer stays.
    assert any(POWERTOOLS_LAYER_NAME in layer for layer in layers(function))


def test_authorizer_environment_is_what_its_settings_read(synth: Synth) -> None:
    env: dict[str, str] = authorizer_function(synth)["Environment"]["Variables"]
    # The extension's own cache is off: the function caches (docs/decisions.md).
    assert env["PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED"] == "false"
    assert env["TOKEN_SOURCE"] == "extension"
    settings = AuthorizerSettings.from_env(env)
    assert settings.parameter_name == "/originlock/Originlock/origin-token"
    assert settings.header_name == HEADER
    assert settings.token_source == "extension"
    assert settings.extension_port == 2773
    # derived from the SSM read budget (originlock/budget.py), for the default 1,000-instance fleet
    assert settings.cache_max_age == 125
    source = (functions_dir() / "authorizer" / "settings.py").read_text()
    ours = [
        name
        for name in env
        if not name.startswith(("POWERTOOLS_", "PARAMETERS_SECRETS_EXTENSION_"))
        and name not in ("SSM_PARAMETER_STORE_TTL", "SSM_PARAMETER_STORE_TIMEOUT_MILLIS")
        and not name.startswith("SECRETS_MANAGER_")
    ]
    for name in ours:
        assert f'"{name}"' in source, f"{name} is not read by authorizer/settings.py"


def test_authorizer_may_only_read_its_parameter(synth: Synth) -> None:
    role = synth.logical_id(synth.main.api.authorizer.role)
    granted = grants(synth.json(), role)
    logs = synth.logical_id(synth.main.api.authorizer.log_group)
    assert granted == {
        frozenset({"logs:CreateLogStream", "logs:PutLogEvents"}): [f"<{logs}.Arn>"],
        frozenset({"ssm:GetParameter"}): [
            "arn:<AWS::Partition>:ssm:eu-west-1:111111111111:parameter/originlock/Originlock/origin-token"
        ],
    }


def test_authorizer_may_decrypt_with_the_customer_key(variant: Synth) -> None:
    role = variant.logical_id(variant.main.api.authorizer.role)
    key = variant.main.token.key
    assert key is not None
    granted = grants(variant.json(), role)
    assert granted[frozenset({"kms:Decrypt"})] == [f"<{variant.logical_id(key)}.Arn>"]
