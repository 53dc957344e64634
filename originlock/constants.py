"""Names shared by the construct library (:mod:`originlock.cdk`), the sandbox and the CLI: one
place to change them. Plain values, no AWS CDK import (the CLI installs without it)."""

from __future__ import annotations

from typing import Any

# The origin header CloudFront adds (the blog's name).
DEFAULT_HEADER_NAME = "x-cf-api-gateway-token"

# The rotation's state machine (and its schedule) is named "<name prefix><suffix>": a literal
# name, so the rotate function's and the drift guard's policies can name its executions
# without a cycle. The prefix is the stack's name unless set.
STATE_MACHINE_SUFFIX = "-rotation"
# The token parameter, when no name is given: one per name prefix.
PARAMETER_NAME_TEMPLATE = "/originlock/{prefix}/origin-token"

# CloudFront web ACLs (scope CLOUDFRONT) exist only in us-east-1.
WAF_REGION = "us-east-1"
# CloudFront delivers no standard logs to buckets in opt-in Regions (CloudFront Developer
# Guide, "Standard logging (legacy)": choosing a bucket), so a log bucket cannot live there.
OPT_IN_REGIONS = frozenset(
    {
        "af-south-1",
        "ap-east-1",
        "ap-east-2",
        "ap-south-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-southeast-5",
        "ap-southeast-7",
        "ca-west-1",
        "eu-central-2",
        "eu-south-1",
        "eu-south-2",
        "il-central-1",
        "me-central-1",
        "me-south-1",
        "mx-central-1",
    }
)
# CloudFront standard log files expire with the functions' log groups (three months).
ACCESS_LOG_DAYS = 90

# The Lambda asset is functions/ zipped as it is: only build litter is left out.
ASSET_EXCLUDE = [
    "**/__pycache__",
    "**/*.pyc",
    "**/.pytest_cache",
    "**/.mypy_cache",
    "**/.ruff_cache",
]

# The AWS-managed Powertools for AWS Lambda (Python) v3 layer.
POWERTOOLS_LAYER_ACCOUNT = "017000801446"
POWERTOOLS_LAYER_NAME = "AWSLambdaPowertoolsPythonV3-python313-arm64"
POWERTOOLS_LAYER_VERSION = 27

AUTHORIZER_HANDLER = "authorizer.handler.lambda_handler"
ROTATE_HANDLER = "rotate.handler.lambda_handler"
PARAMETER_PROVIDER_HANDLER = "provision.handler.token_parameter_handler"
HEADER_PROVIDER_HANDLER = "provision.handler.origin_header_handler"
AGE_PROBE_HANDLER = "provision.token_age.lambda_handler"

PARAMETER_RESOURCE_TYPE = "Custom::OriginlockTokenParameter"
HEADER_RESOURCE_TYPE = "Custom::OriginlockOriginHeaderValue"
SIGNING_KEY_PROVIDER_HANDLER = "provision.handler.signing_key_handler"
SIGNING_KEY_RESOURCE_TYPE = "Custom::OriginlockSigningKey"
# Stands in for the origin header value in the drift guard's copy of the
# distribution configuration (the real value would be a reference to itself).
HEADER_VALUE_PLACEHOLDER = "<origin header value>"

METRICS_NAMESPACE = "originlock"
AUTHORIZER_SERVICE = "authorizer"
ROTATE_SERVICE = "rotate"
AGE_PROBE_SERVICE = "token-age"
AGE_METRIC = "TokenAgeSeconds"
# The token parameter's tag that mirrors the document's current_since (the same name as
# functions/tokens/document.py's CURRENT_SINCE_TAG; tests/infra checks they agree).
CURRENT_SINCE_TAG = "originlock:current-since"
# The token parameter's tag naming the stack that manages it (the same name as
# functions/provision/logic.py's OWNER_TAG; tests/unit/test_provision.py checks they agree).
OWNER_TAG = "originlock:stack"
DENIED_METRIC = "Denied"

API_STAGE = "$default"

# Every status CloudFront takes a custom error response for: none is served from its cache
# (docs/decisions.md, "No error answer is served from CloudFront's cache"). The sandbox's
# distribution is configured the same way.
NOT_CACHED_ERRORS = (400, 403, 404, 405, 414, 416, 500, 501, 502, 503, 504)

SCHEDULE_INPUT: dict[str, Any] = {
    "mode": "rotate",
    "trigger": "schedule",
    "reason": "scheduled rotation",
    "requested_by": "eventbridge-scheduler",
}

# Stack output key -> what it holds: what the originlock CLI reads (originlock/target.py's
# OUTPUT_KEYS) and what the constructs declare.
OUTPUT_STATE_MACHINE_ARN = "StateMachineArn"
OUTPUT_PARAMETER_NAME = "ParameterName"
OUTPUT_DISTRIBUTION_ID = "DistributionId"
OUTPUT_API_URL = "ApiUrl"
OUTPUT_CLOUDFRONT_URL = "CloudFrontUrl"
OUTPUT_AUTHORIZER_FUNCTION_NAME = "AuthorizerFunctionName"
OUTPUT_SCHEDULE_NAME = "ScheduleName"
OUTPUT_SCHEDULE_GROUP_NAME = "ScheduleGroupName"
OUTPUT_ORIGIN_HEADER_NAME = "OriginHeaderName"
OUTPUT_ROTATE_FUNCTION_NAME = "RotateFunctionName"
OUTPUT_ALARM_TOPIC_ARN = "AlarmTopicArn"
# Attach mode: what the documented wiring step names.
OUTPUT_AUTHORIZER_ID = "AuthorizerId"
OUTPUT_AUTHORIZER_URI = "AuthorizerUri"
