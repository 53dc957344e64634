"""The SSM read budget of the authorizer fleet, and the cache max age that keeps to it.

Each authorizer instance reads the token document at most once per ``(1 - JITTER)`` * its
max age while SSM answers (``functions/authorizer/cache.py``: whatever the traffic, sprays of
random header values included), so a fleet of N instances reads at most
``N / ((1 - JITTER) * max age)`` times per second. The construct library (originlock.cdk)
gives the authorizer the smallest max age (not below the configured one) that keeps its
largest fleet within the budget. docs/authorizer.md, "SSM budget".
"""

from __future__ import annotations

import math

# functions/authorizer/cache.py's JITTER (tests/infra checks they agree).
JITTER = 0.2
# Lambda's default concurrency quota per account and region: the largest fleet an
# authorizer without reserved concurrency can reach there.
DEFAULT_MAX_INSTANCES = 1000


def fleet_reads_per_second(instances: int, max_age: float) -> float:
    """The most GetParameter calls per second *instances* warm instances make while SSM
    answers (their refreshes spread by the jitter)."""
    return instances / ((1 - JITTER) * max_age)


def max_age_for_budget(configured_max_age: int, instances: int, reads_per_second: float) -> int:
    """The smallest whole-second max age, at least *configured_max_age*, at which a fleet of
    *instances* stays within *reads_per_second*."""
    needed = math.ceil(instances / ((1 - JITTER) * reads_per_second))
    return max(configured_max_age, needed)


# The default budget: a quarter of SSM's default quota (40/s), the rest left to the account.
DEFAULT_READ_BUDGET = 10.0
