"""Token-age probe: publish how long ago the current token value became current.

Run on a schedule by the CDK app; an alarm fires when the age passes twice the
rotation schedule. It reads the parameter's metadata only, never its value: the
``originlock:current-since`` tag the rotate function keeps in step with the document
(``ssm:ListTagsForResource``), else, for a parameter no rotation has written yet, its
``LastModifiedDate`` (``ssm:DescribeParameters``).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from provision.aws import _client
from tokens.document import CURRENT_SINCE_TAG

NAMESPACE = "originlock"
SERVICE = "token-age"
METRIC = "TokenAgeSeconds"


class ParameterNotFoundError(Exception):
    """The token parameter does not exist (no datapoint: the alarm treats that as breaching)."""


def token_age_seconds(last_modified: datetime, now: datetime) -> float:
    """Seconds since *last_modified* (never negative: clocks may disagree slightly)."""
    if last_modified.tzinfo is None:
        last_modified = last_modified.replace(tzinfo=UTC)
    return max(0.0, (now - last_modified).total_seconds())


def last_modified(client: Any, name: str) -> datetime:
    """``LastModifiedDate`` of parameter *name*, from its metadata only."""
    response = client.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}]
    )
    for parameter in response.get("Parameters", []):
        if parameter.get("Name") == name:
            value: datetime = parameter["LastModifiedDate"]
            return value
    raise ParameterNotFoundError(f"parameter {name} not found")


def current_since(client: Any, name: str) -> datetime | None:
    """The ``originlock:current-since`` tag of parameter *name*, if it holds a timestamp."""
    tags = client.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)
    for tag in tags.get("TagList", []):
        if tag.get("Key") == CURRENT_SINCE_TAG:
            try:
                return datetime.fromisoformat(str(tag.get("Value", "")).replace("Z", "+00:00"))
            except ValueError:
                return None
    return None


def current_value_set_at(client: Any, name: str) -> datetime:
    """When the current value was set: the tag, else the parameter's last write."""
    modified = last_modified(client, name)  # also: ParameterNotFoundError
    return current_since(client, name) or modified


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.metrics import MetricUnit

    logger = Logger(service=SERVICE)
    name = os.environ["SSM_PARAMETER_NAME"]
    try:
        # botocore's standard retries (throttling, 5xx, no answer: 5 attempts), as every
        # custom resource's client (provision/aws.py)
        modified = current_value_set_at(_client("ssm"), name)
    except ParameterNotFoundError:
        logger.error("token parameter not found", parameter_name=name)
        return {"parameter_name": name, "age_seconds": None}
    age = token_age_seconds(modified, datetime.now(UTC))
    metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
    metrics.add_metric(name=METRIC, unit=MetricUnit.Seconds, value=age)
    metrics.flush_metrics()
    logger.info("token age", parameter_name=name, age_seconds=round(age))
    return {"parameter_name": name, "age_seconds": round(age)}
