"""Synthesize the CDK app once per session, offline, in five configurations.

* ``synth``: cdk.json's defaults in eu-west-1 (so the web ACL crosses regions),
  with an alarm e-mail.
* ``variant``: stack ``Staging`` (its names follow), no WAF, a customer managed key,
  an existing backend URL, a cron
  schedule, a reserved concurrency for the authorizer, which reads its parameter
  with the SDK (no extension layer), no CloudFront standard logs, and no region at
  all (the offline fallback).
* ``defaults``: cdk.json's context unchanged, as ``make synth`` runs it: no account,
  no region, WAF on, so both stacks land in us-east-1 and the web ACL's ARN travels
  as a plain export instead of CDK's cross-region reader.
* ``attach``: attach mode (``-c attach=true``) from ids alone: an API, a distribution and
  one of its origins, the blog's parameter, an existing web ACL; no AWS call.
* ``edge``: edge-signed mode (``-c lockMode=edge-signed``): the signing function, its
  KeyValueStore and the signing-key resources instead of the origin header and its guard.

All five synthesize under moto with the token parameter seeded with a known value:
if anything read it at synth time, the secret scan would find it.

``parts`` is not the app but a user's own, using the library's parts alone (as
tests/infra/test_library_parts.py checks): ``MyService`` with its HTTP API behind
``OriginAuthorizer`` and a ``TokenParameter`` under the user's key, ``MyRotation`` with a
``RotationWorkflow`` for a distribution and an API made outside CDK, named by their ids.
The scans every configuration passes run on it too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_cdk import App, CfnOutput, RemovalPolicy, Stack, Validations
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks
from moto import mock_aws

from infra.app import build_app
from infra.config import AppConfig
from infra.constants import ROOT, WAF_STACK_SUFFIX
from infra.stacks import AttachStack, EdgeWafStack, OriginlockStack
from originlock.cdk import OriginAuthorizer, RotationProps, RotationWorkflow, TokenParameter
from originlock.cdk.findings import skip_checkov
from originlock.cdk.functions import acknowledge
from originlock.cdk.props import default_parameter_name
from tokens.document import TokenDocument, generate_token

CDK_JSON = ROOT / "cdk.json"
ACCOUNT = "111111111111"
CLI_ENVIRONMENT = ("CDK_DEFAULT_REGION", "CDK_DEFAULT_ACCOUNT")
MAIN_CONTEXT = {"region": "eu-west-1", "account": ACCOUNT, "alarmEmail": "ops@example.com"}
VARIANT_CONTEXT = {
    "stackName": "Staging",
    "wafEnabled": "false",
    "createKey": "true",
    "backendUrl": "https://backend.example.com/app",
    "rotationSchedule": "cron(0 3 ? * MON *)",
    "tokenMaxAgeSeconds": "1209600",
    "authorizerReservedConcurrency": "25",
    "authorizerTokenSource": "sdk",
    "cloudFrontLogsEnabled": "false",
}
# A blog-style setup: its API and distribution, made in the console, named by id.
ATTACH_CONTEXT = {
    "attach": "true",
    "stackName": "BlogLock",
    "region": "eu-west-1",
    "account": ACCOUNT,
    "apiId": "a1b2c3d4e5",
    "distributionId": "E1ABCDEF2GHIJK",
    "originIds": "blog-api",
    "distributionDomainName": "d111111abcdef8.cloudfront.net",
    "parameterName": "/blog/cf-api-gateway-token",
    "webAclArn": "arn:aws:wafv2:us-east-1:111111111111:global/webacl/blog/0f1e2d3c",
}
# Edge-signed mode (docs/edge-signed.md): a CloudFront Function signs with a KeyValueStore's key.
EDGE_CONTEXT = {
    "stackName": "EdgeLock",
    "region": "eu-west-1",
    "account": ACCOUNT,
    "lockMode": "edge-signed",
}


# The library's parts alone in a user's app (``parts``): two stacks, and what the rotation
# serves, made outside CDK (in the console, with Terraform) and named by id.
AUTHORIZER_ALONE = "MyService"
ROTATION_ALONE = "MyRotation"
OUTSIDE_DISTRIBUTION_ID = "E1ABCDEF2GHIJK"
OUTSIDE_API_ID = "a1b2c3d4e5"
USERS_OWN_STAGE = (
    "The user's own API stage, not originlock's: whether it keeps access logs is the user's "
    "choice (this test app keeps none)."
)


@dataclass
class Synth:
    app: App
    # OriginlockStack, or AttachStack in attach mode (the authorizer's stack in ``parts``).
    main: Any
    waf: EdgeWafStack | None
    outdir: Path
    # The value seeded into (moto's) token parameter before synthesis.
    seeded_token: str

    @property
    def template(self) -> Template:
        return Template.from_stack(self.main)

    @property
    def waf_template(self) -> Template:
        assert self.waf is not None
        return Template.from_stack(self.waf)

    def json(self) -> dict[str, Any]:
        return dict(self.template.to_json())

    def waf_json(self) -> dict[str, Any]:
        return dict(self.waf_template.to_json())

    def templates(self) -> list[Path]:
        return sorted(self.outdir.glob("*.template.json"))

    def logical_id(self, construct: Any) -> str:
        return logical_id(self.main, construct)

    def resource(self, construct: Any) -> dict[str, Any]:
        resources: dict[str, Any] = self.json()["Resources"]
        return resources[self.logical_id(construct)]  # type: ignore[no-any-return]


def logical_id(stack: Stack, construct: Any) -> str:
    """The logical id in *stack*'s template of *construct* (its default child's, if it has one)."""
    cfn = getattr(construct, "node", None) and construct.node.default_child
    target = cfn if cfn is not None else construct
    return str(stack.resolve(stack.get_logical_id(target)))


def cdk_json_context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads(CDK_JSON.read_text())["context"]
    return dict(context)


@contextmanager
def offline(parameter_names: Sequence[str]) -> Iterator[str]:
    """Synthesis without the CDK CLI's environment, AWS in moto, each token parameter seeded
    with a document of one known value in both regions: yields that value."""
    seeded = generate_token()
    saved = {key: os.environ.pop(key, None) for key in CLI_ENVIRONMENT}
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    try:
        with mock_aws():
            for region in ("eu-west-1", "us-east-1"):
                ssm = boto3.client(
                    "ssm",
                    region_name=region,
                    aws_access_key_id="testing",
                    aws_secret_access_key="testing",
                )
                for name in parameter_names:
                    ssm.put_parameter(
                        Name=name,
                        Value=TokenDocument(current=seeded).evolve().to_json(),
                        Type="SecureString",
                    )
            yield seeded
    finally:
        for key, value in saved.items():
            if value is not None:
                os.environ[key] = value


def synthesize(overrides: dict[str, Any], outdir: Path) -> Synth:
    context = {**cdk_json_context(), **overrides}
    config = AppConfig.from_context(context.get)
    with offline([config.parameter_name]) as seeded:
        app = build_app(context=context, outdir=str(outdir))
        app.synth()
    main = app.node.find_child(config.stack_name)
    assert isinstance(main, AttachStack if "attach" in overrides else OriginlockStack)
    waf = app.node.try_find_child(f"{config.stack_name}{WAF_STACK_SUFFIX}")
    assert waf is None or isinstance(waf, EdgeWafStack)
    return Synth(app, main, waf, outdir, seeded)


def authorizer_alone(stack: Stack) -> OriginAuthorizer:
    """A user's HTTP API whose routes take originlock's authorizer, which reads a token
    parameter under the user's key: nothing else of originlock."""
    key = kms.Key(stack, "Key", enable_key_rotation=True, removal_policy=RemovalPolicy.DESTROY)
    token = TokenParameter(
        stack,
        "Token",
        parameter_name=default_parameter_name(stack.stack_name),
        encryption_key=key,
    )
    authorizer = OriginAuthorizer(stack, "Authorizer", token=token)
    api = apigwv2.HttpApi(stack, "Api")
    for path in ("/", "/{proxy+}"):
        api.add_routes(
            path=path,
            methods=[apigwv2.HttpMethod.ANY],
            integration=integrations.HttpUrlIntegration(
                f"Backend{len(path)}", f"https://backend.example.com{path}"
            ),
            authorizer=authorizer.route_authorizer,
        )
    stage = api.default_stage
    assert isinstance(stage, apigwv2.HttpStage)
    acknowledge(stage, ("AwsSolutions-APIG1", USERS_OWN_STAGE))
    skip_checkov(stage, ("CKV_AWS_95", USERS_OWN_STAGE))
    return authorizer


def rotation_alone(stack: Stack, props: RotationProps | None = None) -> RotationWorkflow:
    """The rotation of a distribution and an API made outside CDK, named by their ids, with
    the token parameter and the authorizer it needs: nothing else of originlock. The stack
    declares the outputs the originlock CLI reads (``originlock --stack MyRotation status``)."""
    token = TokenParameter(stack, "Token", parameter_name=default_parameter_name(stack.stack_name))
    authorizer = OriginAuthorizer(stack, "Authorizer", token=token)
    rotation = RotationWorkflow(
        stack,
        "Rotation",
        token=token,
        authorizer=authorizer,
        distribution_id=OUTSIDE_DISTRIBUTION_ID,
        api_id=OUTSIDE_API_ID,
        props=props,
    )
    outputs = {
        "StateMachineArn": rotation.state_machine.state_machine_arn,
        "ParameterName": token.name,
        "DistributionId": rotation.distribution_id,
        "AuthorizerFunctionName": authorizer.function.function_name,
        "ScheduleName": rotation.schedule.schedule_name,
        "OriginHeaderName": authorizer.header_name,
    }
    for key, value in outputs.items():
        CfnOutput(stack, key, value=value)
    return rotation


def synthesize_parts(outdir: Path) -> Synth:
    """The user's app of ``parts``, with cdk-nag's checks as the originlock app has them."""
    names = (AUTHORIZER_ALONE, ROTATION_ALONE)
    with offline([default_parameter_name(name) for name in names]) as seeded:
        app = App(outdir=str(outdir))
        authorizer_alone(Stack(app, AUTHORIZER_ALONE))
        rotation_alone(Stack(app, ROTATION_ALONE))
        Validations.of(app).add_plugins(AwsSolutionsChecks(app))
        app.synth()
    return Synth(app, app.node.find_child(AUTHORIZER_ALONE), None, outdir, seeded)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    yield synthesize(MAIN_CONTEXT, tmp_path_factory.mktemp("cdk-main"))


@pytest.fixture(scope="session")
def variant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    yield synthesize(VARIANT_CONTEXT, tmp_path_factory.mktemp("cdk-variant"))


@pytest.fixture(scope="session")
def defaults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    yield synthesize({}, tmp_path_factory.mktemp("cdk-defaults"))


@pytest.fixture(scope="session")
def attach(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    yield synthesize(ATTACH_CONTEXT, tmp_path_factory.mktemp("cdk-attach"))


@pytest.fixture(scope="session")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    yield synthesize(EDGE_CONTEXT, tmp_path_factory.mktemp("cdk-edge"))


@pytest.fixture(scope="session")
def parts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    yield synthesize_parts(tmp_path_factory.mktemp("cdk-parts"))


# The configurations of the locked-down app (OriginlockStack).
CONFIGURATIONS = ["synth", "variant", "defaults"]
# Every synthesized configuration: the scans that must hold for any of them run on each.
SCANNED = [*CONFIGURATIONS, "attach", "edge", "parts"]


def of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


def policy_statements(template: dict[str, Any], role_logical_id: str) -> list[dict[str, Any]]:
    """Every statement granted to a role: attached AWS::IAM::Policy documents and inline ones."""
    statements: list[dict[str, Any]] = []
    for resource in of_type(template, "AWS::IAM::Policy").values():
        if {"Ref": role_logical_id} in resource["Properties"].get("Roles", []):
            statements += resource["Properties"]["PolicyDocument"]["Statement"]
    role = template["Resources"][role_logical_id]["Properties"]
    for inline in role.get("Policies", []):
        statements += inline["PolicyDocument"]["Statement"]
    return statements


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def flatten(value: Any) -> str:
    """A resource expression as text: Fn::Join parts concatenated, intrinsics as <...>."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return str(separator).join(flatten(part) for part in parts)
        if "Ref" in value:
            return f"<{value['Ref']}>"
        if "Fn::GetAtt" in value:
            return f"<{'.'.join(value['Fn::GetAtt'])}>"
        if "Fn::Sub" in value:
            return str(value["Fn::Sub"])
    return json.dumps(value, sort_keys=True)


def grants(template: dict[str, Any], role_logical_id: str) -> dict[frozenset[str], list[str]]:
    """``{actions: [resources as text]}`` for a role, ignoring its own log group."""
    result: dict[frozenset[str], list[str]] = {}
    for statement in policy_statements(template, role_logical_id):
        assert statement["Effect"] == "Allow"
        actions = frozenset(as_list(statement["Action"]))
        result.setdefault(actions, []).extend(flatten(r) for r in as_list(statement["Resource"]))
    return result
