"""The app's own names and cdk.json's defaults. The construct library's names (handlers,
resource types, tags, metrics) are in :mod:`originlock.constants`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from originlock.constants import DEFAULT_HEADER_NAME, POWERTOOLS_LAYER_VERSION

# The checkout the app runs from (cdk.json beside infra/).
ROOT = Path(__file__).resolve().parent.parent

DEFAULT_STACK_NAME = "Originlock"
WAF_STACK_SUFFIX = "EdgeWaf"
# Only when neither context nor the CLI names a region (offline synth).
FALLBACK_REGION = "us-east-1"

# cdk.json carries the same defaults; these apply when a key is absent (tests).
CONTEXT_DEFAULTS: dict[str, Any] = {
    "stackName": DEFAULT_STACK_NAME,
    "account": "",
    "region": "",
    "headerName": DEFAULT_HEADER_NAME,
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
    # The fleet's SSM reads per second; the largest fleet (0: the reserved concurrency if set,
    # else Lambda's default account quota). originlock/budget.py derives the max age from both.
    "ssmReadBudgetPerSecond": 10,
    "authorizerMaxInstances": 0,
    "backendUrl": "",
    "cloudFrontLogsEnabled": True,
    "wafEnabled": True,
    "wafRateLimit": 2000,
    "alarmEmail": "",
    "tokenMaxAgeSeconds": 0,
    "powertoolsLayerVersion": POWERTOOLS_LAYER_VERSION,
    # How CloudFront proves itself: header (a secret origin header) or edge-signed (a
    # CloudFront Function signs each request with a key from a KeyValueStore; docs/edge-signed.md).
    "lockMode": "header",
    "edgeWindowSeconds": 60,
    "edgeToleranceWindows": 1,
    "edgePropagationSeconds": 60,
    # Edge-signed mode's drain and poll (drainSeconds and pollIntervalSeconds are header mode's:
    # no distribution deployment to wait for here).
    "edgeDrainSeconds": 60,
    "edgePollIntervalSeconds": 5,
    # Attach mode (-c attach=true): an API and a distribution made outside this app, by id.
    "attach": False,
    "apiId": "",
    "apiStage": "$default",
    "distributionId": "",
    # Comma-separated; empty: every origin that carries the header.
    "originIds": "",
    "distributionDomainName": "",
    # An authorizer of the API whose function becomes originlock's; empty: a new authorizer.
    "authorizerId": "",
    "webAclArn": "",
    "logBucketName": "",
}
