"""originlock.cdk in a user's own CDK app: their API, their distribution, originlock attached.

The README's app is run as it stands (its code block, exec'd); the other apps are what users
write next: an L1 distribution with several origins, no distribution at all, an imported API,
a default authorizer, two locks in one stack, and the handovers the library refuses.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Duration, Fn, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk.assertions import Annotations, Match, Template

from originlock.cdk import (
    AlarmProps,
    AuthorizerProps,
    OriginAuthorizer,
    OriginLock,
    PropsError,
    RotationProps,
    TokenSource,
)
from originlock.constants import HEADER_VALUE_PLACEHOLDER, NOT_CACHED_ERRORS
from originlock.target import OUTPUT_KEYS, REQUIRED_OUTPUTS
from tests.infra.conftest import flatten, grants, of_type
from tests.readme import cdk_app_code

pytestmark = pytest.mark.infra

HEADER = "x-cf-api-gateway-token"
AUTHORIZER_HANDLER = "authorizer.handler.lambda_handler"
ROTATE_HANDLER = "rotate.handler.lambda_handler"


@pytest.fixture(autouse=True)
def _quiet_node() -> None:
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")


# -- helpers ---------------------------------------------------------------------------------
def api_host(api: apigwv2.IHttpApi) -> str:
    return Fn.select(2, Fn.split("/", api.api_endpoint))


def hello_integration(stack: Stack) -> apigwv2.HttpRouteIntegration:
    return integrations.HttpUrlIntegration("Backend", "https://backend.example.com/{proxy}")


def synthesize(
    build: Callable[[Stack], Any], name: str = "MyService"
) -> tuple[dict[str, Any], Any]:
    """*build* a user's stack, synthesize it, return its template and what *build* returned."""
    app = App()
    stack = Stack(app, name)
    built = build(stack)
    return dict(Template.from_stack(stack).to_json()), built


def function_ids(template: dict[str, Any], handler: str) -> list[str]:
    return [
        logical_id
        for logical_id, function in of_type(template, "AWS::Lambda::Function").items()
        if function["Properties"].get("Handler") == handler
    ]


def rotate_environment(template: dict[str, Any]) -> dict[str, Any]:
    [rotate] = function_ids(template, ROTATE_HANDLER)
    variables: dict[str, Any] = template["Resources"][rotate]["Properties"]["Environment"][
        "Variables"
    ]
    return variables


def guard_of(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    [(logical_id, guard)] = of_type(template, "Custom::OriginlockOriginHeaderValue").items()
    return logical_id, guard["Properties"]


def origins_of(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    [distribution] = of_type(template, "AWS::CloudFront::Distribution").values()
    config = distribution["Properties"]["DistributionConfig"]
    return {origin["Id"]: origin for origin in config["Origins"]}


def normalized(value: Any) -> Any:
    """Keys lower-cased: the guard's copy is camelCase, the template PascalCase."""
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)).startswith(("Fn::", "Ref")):
            return value
        return {key.lower(): normalized(item) for key, item in value.items()}
    if isinstance(value, list):
        return [normalized(item) for item in value]
    return value


def contained(expected: Any, actual: Any) -> bool:
    """Every value of *expected* is in *actual* (the guard's copy may hold keys CloudFormation's
    rendering drops, such as the L2's ``pathPattern`` of the default behavior)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and contained(item, actual[key]) for key, item in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(contained(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return bool(expected == actual)


# -- the README's app ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def readme_app() -> Iterator[dict[str, Any]]:
    """The README's code block, run as `python app.py` runs it (its own App, its own outdir)."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(cdk_app_code(), "README.md", "exec"), namespace)  # noqa: S102 - our README
    outdir = Path(namespace["app"].outdir)
    template = json.loads((outdir / "MyService.template.json").read_text())
    yield {"template": template, "namespace": namespace, "outdir": outdir}


def test_readme_app_has_one_api_and_one_distribution_with_originlock_attached(
    readme_app: dict[str, Any],
) -> None:
    template = readme_app["template"]
    # One API, one distribution: the user's own
    assert len(of_type(template, "AWS::ApiGatewayV2::Api")) == 1
    assert len(of_type(template, "AWS::CloudFront::Distribution")) == 1
    # Their routes go through originlock's authorizer, which is a request authorizer on the header
    [(authorizer_id, authorizer)] = of_type(template, "AWS::ApiGatewayV2::Authorizer").items()
    [function] = function_ids(template, AUTHORIZER_HANDLER)
    assert function in flatten(authorizer["Properties"]["AuthorizerUri"])
    assert authorizer["Properties"]["IdentitySource"] == [f"$request.header.{HEADER}"]
    routes = of_type(template, "AWS::ApiGatewayV2::Route").values()
    assert routes
    for route in routes:
        assert route["Properties"]["AuthorizationType"] == "CUSTOM"
        assert route["Properties"]["AuthorizerId"] == {"Ref": authorizer_id}


def test_readme_apps_origin_header_comes_from_the_drift_guard(readme_app: dict[str, Any]) -> None:
    template = readme_app["template"]
    guard_id, guard = guard_of(template)
    [(distribution_id, distribution)] = of_type(template, "AWS::CloudFront::Distribution").items()
    # The origin's header value is the guard's attribute, never a literal
    assert origins_of(template)["api"]["OriginCustomHeaders"] == [
        {"HeaderName": HEADER, "HeaderValue": {"Fn::GetAtt": [guard_id, "Value"]}}
    ]
    # The guard finds the distribution and carries its configuration (all but the header it
    # sets): whatever would change the distribution changes the guard, which then runs first
    assert guard["DistributionLogicalId"] == distribution_id
    expected = normalized(distribution["Properties"]["DistributionConfig"])
    for origin in expected["origins"]:
        origin.pop("origincustomheaders", None)
    assert contained(expected, normalized(guard["DistributionConfig"]))
    # The user's error responses are theirs, kept as they wrote them
    responses = distribution["Properties"]["DistributionConfig"]["CustomErrorResponses"]
    assert {r["ErrorCode"]: r["ErrorCachingMinTTL"] for r in responses} == dict.fromkeys(
        NOT_CACHED_ERRORS, 0
    )


def test_readme_apps_rotation_switches_the_users_origin(readme_app: dict[str, Any]) -> None:
    template = readme_app["template"]
    env = rotate_environment(template)
    [distribution_id] = of_type(template, "AWS::CloudFront::Distribution")
    assert env["DISTRIBUTION_ID"] == {"Ref": distribution_id}
    assert env["ORIGIN_IDS"] == "api"
    assert flatten(env["PROBE_URL"]) == f"https://<{distribution_id}.DomainName>"
    # Names follow the user's stack
    assert env["SSM_PARAMETER_NAME"] == "/originlock/MyService/origin-token"
    [machine] = of_type(template, "AWS::StepFunctions::StateMachine").values()
    assert machine["Properties"]["StateMachineName"] == "MyService-rotation"
    # The rotate role may update this one distribution
    [role] = [r for r in of_type(template, "AWS::IAM::Role") if "RotationRotateRole" in r]
    granted = grants(template, role)
    cloudfront_actions = frozenset(
        {
            "cloudfront:GetDistribution",
            "cloudfront:GetDistributionConfig",
            "cloudfront:UpdateDistribution",
        }
    )
    assert granted[cloudfront_actions] == [
        f"arn:<AWS::Partition>:cloudfront::<AWS::AccountId>:distribution/<{distribution_id}>"
    ]


def test_readme_app_declares_the_outputs_the_cli_reads(readme_app: dict[str, Any]) -> None:
    outputs = readme_app["template"]["Outputs"]
    assert set(OUTPUT_KEYS) <= set(outputs)
    assert set(REQUIRED_OUTPUTS) <= set(outputs)
    assert outputs["OriginHeaderName"]["Value"] == HEADER


def test_readme_app_synthesizes_without_warnings(readme_app: dict[str, Any]) -> None:
    stack = readme_app["namespace"]["stack"]
    assert Annotations.from_stack(stack).find_warning("*", Match.any_value()) == []


# -- other users' apps -----------------------------------------------------------------------
def two_origin_distribution(stack: Stack, api: apigwv2.HttpApi) -> cloudfront.CfnDistribution:
    Cfn = cloudfront.CfnDistribution
    return Cfn(
        stack,
        "Cdn",
        distribution_config=Cfn.DistributionConfigProperty(
            enabled=True,
            origins=[
                Cfn.OriginProperty(
                    id="site",
                    domain_name="site.example.com",
                    custom_origin_config=Cfn.CustomOriginConfigProperty(
                        origin_protocol_policy="https-only"
                    ),
                ),
                Cfn.OriginProperty(
                    id="api",
                    domain_name=api_host(api),
                    custom_origin_config=Cfn.CustomOriginConfigProperty(
                        origin_protocol_policy="https-only"
                    ),
                    origin_custom_headers=[
                        Cfn.OriginCustomHeaderProperty(header_name="x-team", header_value="pay")
                    ],
                ),
            ],
            default_cache_behavior=Cfn.DefaultCacheBehaviorProperty(
                target_origin_id="site", viewer_protocol_policy="redirect-to-https"
            ),
            cache_behaviors=[
                Cfn.CacheBehaviorProperty(
                    path_pattern="/api/*",
                    target_origin_id="api",
                    viewer_protocol_policy="https-only",
                )
            ],
        ),
    )


def test_a_cfn_distribution_gets_the_header_on_the_named_origin_only() -> None:
    def build(stack: Stack) -> OriginLock:
        api = apigwv2.HttpApi(stack, "Api")
        lock = OriginLock(
            stack,
            "Lock",
            existing_api_obj=api,
            existing_distribution_obj=two_origin_distribution(stack, api),
            origin_ids=["api"],
            rotation_props=RotationProps(probe_path="/api/health"),
        )
        api.add_routes(
            path="/api/{proxy+}", integration=hello_integration(stack), authorizer=lock.authorizer
        )
        return lock

    template, lock = synthesize(build)
    guard_id, _ = guard_of(template)
    found = origins_of(template)
    # The user's own header stays, first; originlock's follows; the site's origin is untouched
    assert found["api"]["OriginCustomHeaders"] == [
        {"HeaderName": "x-team", "HeaderValue": "pay"},
        {"HeaderName": HEADER, "HeaderValue": {"Fn::GetAtt": [guard_id, "Value"]}},
    ]
    assert "OriginCustomHeaders" not in found["site"]
    env = rotate_environment(template)
    assert env["ORIGIN_IDS"] == "api"
    assert flatten(env["PROBE_URL"]).endswith(".DomainName>/api/health")
    assert lock.origin_ids == ("api",)
    # This distribution caches origin errors: synthesis says so, on the distribution
    Annotations.from_stack(lock.node.scope).has_warning(
        "/MyService/Cdn", Match.string_like_regexp("caches this distribution's origin errors")
    )


def test_without_a_distribution_originlock_makes_one_in_front_of_the_api() -> None:
    def build(stack: Stack) -> OriginLock:
        api = apigwv2.HttpApi(stack, "Api")
        lock = OriginLock(stack, "Lock", existing_api_obj=api)
        api.add_routes(
            path="/{proxy+}", integration=hello_integration(stack), authorizer=lock.authorizer
        )
        return lock

    template, lock = synthesize(build)
    assert lock.edge is not None
    [origin] = origins_of(template).values()
    assert flatten(origin["DomainName"]).count("ApiEndpoint") == 1
    guard_id, guard = guard_of(template)
    assert origin["OriginCustomHeaders"] == [
        {"HeaderName": HEADER, "HeaderValue": {"Fn::GetAtt": [guard_id, "Value"]}}
    ]
    # The guard's copy has the placeholder where the value goes
    [copied] = guard["DistributionConfig"]["origins"]
    assert copied["originCustomHeaders"][0]["headerValue"] == HEADER_VALUE_PLACEHOLDER
    # Every origin carrying the header is switched (its only one): no ORIGIN_IDS
    assert "ORIGIN_IDS" not in rotate_environment(template)


def test_an_imported_api_is_locked_by_id() -> None:
    endpoint = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"

    def build(stack: Stack) -> OriginLock:
        api = apigwv2.HttpApi.from_http_api_attributes(
            stack, "Api", http_api_id="a1b2c3d4e5", api_endpoint=endpoint
        )
        lock = OriginLock(stack, "Lock", existing_api_obj=api, api_stage="prod")
        apigwv2.HttpRoute(
            stack,
            "Route",
            http_api=api,
            route_key=apigwv2.HttpRouteKey.with_("/orders", apigwv2.HttpMethod.GET),
            integration=hello_integration(stack),
            authorizer=lock.authorizer,
        )
        return lock

    template, _ = synthesize(build)
    [authorizer] = of_type(template, "AWS::ApiGatewayV2::Authorizer").values()
    assert authorizer["Properties"]["ApiId"] == "a1b2c3d4e5"
    env = rotate_environment(template)
    assert (env["API_ID"], env["API_STAGE"], env["API_URL"]) == (
        "a1b2c3d4e5",
        "prod",
        f"{endpoint}/prod/",
    )
    [origin] = origins_of(template).values()
    assert origin["DomainName"] == "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"


def test_an_imported_api_without_its_endpoint_needs_a_distribution() -> None:
    app = App()
    stack = Stack(app, "MyService")
    api = apigwv2.HttpApi.from_http_api_attributes(stack, "Api", http_api_id="a1b2c3d4e5")
    with pytest.raises(PropsError, match="api_endpoint"):
        OriginLock(stack, "Lock", existing_api_obj=api)


def test_an_authorizer_made_first_serves_as_the_apis_default() -> None:
    def build(stack: Stack) -> OriginLock:
        authorizer = OriginAuthorizer(
            stack, "Auth", props=AuthorizerProps(token_source=TokenSource.SDK)
        )
        api = apigwv2.HttpApi(stack, "Api", default_authorizer=authorizer.route_authorizer)
        api.add_routes(path="/{proxy+}", integration=hello_integration(stack))
        return OriginLock(stack, "Lock", existing_api_obj=api, existing_authorizer_obj=authorizer)

    template, lock = synthesize(build)
    [authorizer_id] = of_type(template, "AWS::ApiGatewayV2::Authorizer")
    [route] = of_type(template, "AWS::ApiGatewayV2::Route").values()
    assert route["Properties"]["AuthorizerId"] == {"Ref": authorizer_id}
    # One authorizer function: the one made first
    assert len(function_ids(template, AUTHORIZER_HANDLER)) == 1
    [function] = function_ids(template, AUTHORIZER_HANDLER)
    assert (
        template["Resources"][function]["Properties"]["Environment"]["Variables"]["TOKEN_SOURCE"]
        == "sdk"
    )
    # It waits for the parameter it reads
    [parameter] = of_type(template, "Custom::OriginlockTokenParameter")
    assert parameter in template["Resources"][function]["DependsOn"]
    assert lock.origin_authorizer is lock.node.scope.node.find_child("Auth")
    assert lock.authorizer is lock.origin_authorizer.route_authorizer
    assert lock.origin_authorizer.parameter_name == "/originlock/MyService/origin-token"


def test_an_authorizer_made_first_must_read_the_locks_parameter() -> None:
    app = App()
    stack = Stack(app, "MyService")
    authorizer = OriginAuthorizer(stack, "Auth", parameter_name="/other/token")
    api = apigwv2.HttpApi(stack, "Api", default_authorizer=authorizer.route_authorizer)
    with pytest.raises(PropsError, match="same parameter_name"):
        OriginLock(stack, "Lock", existing_api_obj=api, existing_authorizer_obj=authorizer)


def test_two_locks_in_one_stack_share_no_name() -> None:
    def build(stack: Stack) -> tuple[OriginLock, OriginLock]:
        first = OriginLock(stack, "Orders", existing_api_obj=apigwv2.HttpApi(stack, "OrdersApi"))
        second_api = apigwv2.HttpApi(stack, "UsersApi")
        # A second lock under the stack's names would share the first one's resources
        with pytest.raises(PropsError, match="name_prefix"):
            OriginLock(stack, "Users", existing_api_obj=second_api)
        # and the CLI reads one lock's outputs per stack
        with pytest.raises(PropsError, match="create_outputs=False"):
            OriginLock(stack, "Users", existing_api_obj=second_api, name_prefix="Users")
        second = OriginLock(
            stack,
            "Users",
            existing_api_obj=second_api,
            name_prefix="MyService-users",
            create_outputs=False,
        )
        return first, second

    template, (first, second) = synthesize(build)
    machines = {
        m["Properties"]["StateMachineName"]
        for m in of_type(template, "AWS::StepFunctions::StateMachine").values()
    }
    assert machines == {"MyService-rotation", "MyService-users-rotation"}
    parameters = {
        p["Properties"]["ParameterName"]
        for p in of_type(template, "Custom::OriginlockTokenParameter").values()
    }
    assert parameters == {
        "/originlock/MyService/origin-token",
        "/originlock/MyService-users/origin-token",
    }
    assert first.outputs and not second.outputs


def test_a_user_distribution_change_reaches_the_drift_guard() -> None:
    def build_with(comment: str) -> Callable[[Stack], OriginLock]:
        def build(stack: Stack) -> OriginLock:
            api = apigwv2.HttpApi(stack, "Api")
            distribution = cloudfront.Distribution(
                stack,
                "Cdn",
                comment=comment,
                default_behavior=cloudfront.BehaviorOptions(
                    origin=origins.HttpOrigin(api_host(api))
                ),
            )
            return OriginLock(
                stack, "Lock", existing_api_obj=api, existing_distribution_obj=distribution
            )

        return build

    first, _ = synthesize(build_with("v1"))
    again, _ = synthesize(build_with("v1"))
    changed, _ = synthesize(build_with("v2"))
    # The same app: the guard's properties are the same (no nonce, nothing runs)
    assert guard_of(first)[1] == guard_of(again)[1]
    # A change of the distribution changes the guard's copy: the guard runs before it
    assert guard_of(first)[1]["DistributionConfig"] != guard_of(changed)[1]["DistributionConfig"]
    assert guard_of(changed)[1]["DistributionConfig"]["comment"] == "v2"


def test_a_user_distributions_web_acl_and_log_bucket_are_the_rotations_to_read() -> None:
    web_acl = "arn:aws:wafv2:us-east-1:111111111111:global/webacl/edge/0f1e2d3c"

    def build(stack: Stack) -> OriginLock:
        api = apigwv2.HttpApi(stack, "Api")
        distribution = cloudfront.Distribution(
            stack,
            "Cdn",
            web_acl_id=web_acl,
            enable_logging=True,
            default_behavior=cloudfront.BehaviorOptions(origin=origins.HttpOrigin(api_host(api))),
        )
        return OriginLock(
            stack, "Lock", existing_api_obj=api, existing_distribution_obj=distribution
        )

    template, _ = synthesize(build)
    [role] = [r for r in of_type(template, "AWS::IAM::Role") if "RotationRotateRole" in r]
    granted = grants(template, role)
    # CloudFront checks both on UpdateDistribution
    assert granted[frozenset({"wafv2:GetWebACL"})] == [web_acl]
    [bucket_arn] = granted[frozenset({"s3:GetBucketAcl", "s3:PutBucketAcl"})]
    [bucket] = of_type(template, "AWS::S3::Bucket")
    assert bucket in bucket_arn and bucket_arn.startswith("arn:<AWS::Partition>:s3:::")


def test_a_distribution_without_a_web_acl_or_logs_grants_neither() -> None:
    template, _ = synthesize(
        lambda stack: OriginLock(
            stack,
            "Lock",
            existing_api_obj=(api := apigwv2.HttpApi(stack, "Api")),
            existing_distribution_obj=cloudfront.Distribution(
                stack,
                "Cdn",
                default_behavior=cloudfront.BehaviorOptions(
                    origin=origins.HttpOrigin(api_host(api))
                ),
            ),
        )
    )
    [role] = [r for r in of_type(template, "AWS::IAM::Role") if "RotationRotateRole" in r]
    actions = {a for actions in grants(template, role) for a in actions}
    assert not {a for a in actions if a.startswith(("wafv2:", "s3:"))}


# -- what the library refuses, before anything joins the tree ---------------------------------
def refused(build: Callable[[Stack], Any], message: str) -> None:
    app = App()
    stack = Stack(app, "MyService")
    with pytest.raises(PropsError, match=message):
        build(stack)


def l2_distribution(stack: Stack, api: apigwv2.HttpApi, **origin: Any) -> cloudfront.Distribution:
    return cloudfront.Distribution(
        stack,
        "Cdn",
        default_behavior=cloudfront.BehaviorOptions(
            origin=origins.HttpOrigin(api_host(api), origin_id="api", **origin)
        ),
        additional_behaviors={
            "/static/*": cloudfront.BehaviorOptions(
                origin=origins.HttpOrigin("static.example.com", origin_id="static")
            )
        },
    )


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("several origins, none named", r"several origins.*its origins: api, static"),
        ("an unknown origin", r"names no origin of the distribution: web"),
        ("the header set by the user", "already sets x-cf-api-gateway-token"),
        ("a distribution of another stack", "in the stack of its OriginLock"),
        ("an imported distribution", "imported distribution is not CloudFormation.s here"),
        ("a cron schedule without a stale age", "token_max_age is required"),
        ("a header name with a space", "header_name"),
        ("a schedule of no kind", "rate"),
    ],
)
def test_a_bad_handover_is_refused_by_name(case: str, message: str) -> None:
    def build(stack: Stack) -> Any:
        api = apigwv2.HttpApi(stack, "Api")
        kwargs: dict[str, Any] = {"existing_api_obj": api}
        if case == "several origins, none named":
            kwargs["existing_distribution_obj"] = l2_distribution(stack, api)
        elif case == "an unknown origin":
            kwargs["existing_distribution_obj"] = l2_distribution(stack, api)
            kwargs["origin_ids"] = ["web"]
        elif case == "the header set by the user":
            kwargs["existing_distribution_obj"] = l2_distribution(
                stack, api, custom_headers={HEADER: "a-literal-secret"}
            )
            kwargs["origin_ids"] = ["api"]
        elif case == "a distribution of another stack":
            other = Stack(stack.node.scope, "Edge")  # type: ignore[arg-type]
            kwargs["existing_distribution_obj"] = l2_distribution(other, api)
            kwargs["origin_ids"] = ["api"]
        elif case == "an imported distribution":
            kwargs["existing_distribution_obj"] = (
                cloudfront.Distribution.from_distribution_attributes(
                    stack, "Cdn", distribution_id="E1ABCDEF2GHIJK", domain_name="d1.cloudfront.net"
                )
            )
        elif case == "a cron schedule without a stale age":
            kwargs["rotation_props"] = RotationProps(schedule="cron(0 3 ? * MON *)")
        elif case == "a header name with a space":
            kwargs["header_name"] = "x origin"
        elif case == "a schedule of no kind":
            kwargs["rotation_props"] = RotationProps(schedule="every week")
        return OriginLock(stack, "Lock", **kwargs)

    refused(build, message)


def test_a_cron_schedule_takes_its_stale_age_from_the_alarm_props() -> None:
    template, lock = synthesize(
        lambda stack: OriginLock(
            stack,
            "Lock",
            existing_api_obj=apigwv2.HttpApi(stack, "Api"),
            rotation_props=RotationProps(schedule="cron(0 3 ? * MON *)"),
            alarm_props=AlarmProps(token_max_age=Duration.days(14)),
        )
    )
    assert lock.alarms.token_max_age_seconds == 14 * 86400
    stale = [
        a
        for a in of_type(template, "AWS::CloudWatch::Alarm").values()
        if a["Properties"]["MetricName"] == "TokenAgeSeconds"
    ]
    assert [a["Properties"]["Threshold"] for a in stale] == [14 * 86400]


def test_the_library_needs_no_checkout(readme_app: dict[str, Any]) -> None:
    # The Lambda asset of the README's app is functions/ as found by originlock.bundle
    from originlock.bundle import functions_dir

    template = readme_app["template"]
    [function] = function_ids(template, AUTHORIZER_HANDLER)
    key = template["Resources"][function]["Properties"]["Code"]["S3Key"]
    staged = Path(readme_app["outdir"]) / f"asset.{key.removesuffix('.zip')}"
    expected = sorted(
        str(p.relative_to(functions_dir()))
        for p in functions_dir().rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    found = sorted(str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file())
    assert found == expected
    assert re.search(r"tokens/document\.py", " ".join(found))
