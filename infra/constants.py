"""Names shared by the CDK app and its tests: one place to change them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = ROOT / "functions"
ASL_FILE = ROOT / "statemachine" / "rotation.asl.json"
# The Lambda asset is functions/ zipped as it is: only build litter is left out.
ASSET_EXCLUDE = [
    "**/__pycache__",
    "**/*.pyc",
    "**/.pytest_cache",
    "**/.mypy_cache",
    "**/.ruff_cache",
]

DEFAULT_STACK_NAME = "Originlock"
# The state machine is named "<stack name><suffix>": a literal name, so the rotate
# function's and the drift guard's policies can name its executions without a cycle.
STATE_MACHINE_SUFFIX = "-rotation"
WAF_STACK_SUFFIX = "EdgeWaf"
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
# Only when neither context nor the CLI names a region (offline synth).
FALLBACK_REGION = "us-east-1"

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

SCHEDULE_INPUT: dict[str, Any] = {
    "mode": "rotate",
    "trigger": "schedule",
    "reason": "scheduled rotation",
    "requested_by": "eventbridge-scheduler",
}

# cdk.json carries the same defaults; these apply when a key is absent (tests).
CONTEXT_DEFAULTS: dict[str, Any] = {
    "stackName": DEFAULT_STACK_NAME,
    "account": "",
    "region": "",
    "headerName": "x-cf-api-gateway-token",
    # Empty: /originlock/<stackName>/origin-token (infra/config.py), one per stack.
    "parameterName": "",
    "adoptExistingParameter": True,
    "kmsKeyArn": "",
    "createKey": False,
    "rotationSchedule": "rate(7 days)",
    "rotationEnabled": True,
    "drainSeconds": 300,
    "pollIntervalSeconds": 30,
    "deployTimeoutSeconds": 1800,
    "authorizerCacheTtlSeconds": 300,
    # 0: no reservation (a reservation must leave 100 unreserved in the account).
    "authorizerReservedConcurrency": 0,
    "authorizerTokenSource": "extension",
    "authorizerTokenMaxAgeSeconds": 60,
    "authorizerRefreshIntervalSeconds": 1,
    "backendUrl": "",
    "cloudFrontLogsEnabled": True,
    "wafEnabled": True,
    "wafRateLimit": 2000,
    "alarmEmail": "",
    "tokenMaxAgeSeconds": 0,
    "powertoolsLayerVersion": POWERTOOLS_LAYER_VERSION,
}
