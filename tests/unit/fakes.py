"""In-memory fakes of the authorizer's ports (the parameter reader, the clock) and test helpers."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import authorizer.handler
from tokens.document import TokenDocument, generate_token
from tokens.store import StoreError

EVENTS = Path(__file__).resolve().parents[1] / "events"
HEADER = "x-cf-api-gateway-token"
PARAMETER_NAME = "/originlock/test/origin-token"


class FakeClock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self, start: float = 10_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeParameter:
    """The SSM parameter as the authorizer's reader port sees it: a value, or a failure.

    ``failure`` set to an exception makes every read raise it (an outage); ``value``
    set to ``None`` reads as a missing parameter.
    """

    def __init__(self, value: str | None = None) -> None:
        self.value = value
        self.failure: BaseException | None = None
        self.reads = 0

    def read(self) -> str:
        self.reads += 1
        if self.failure is not None:
            raise self.failure
        if self.value is None:
            raise StoreError("ParameterNotFound")
        return self.value


class UnexpectedErrors(list[BaseException]):
    """Every exception the handler's last-resort ``except`` caught, in order."""

    def report(self) -> str:
        """The caught exceptions with their tracebacks, for an assertion message."""
        import traceback

        return "\n".join("".join(traceback.format_exception(exc)) for exc in self)


@dataclass(frozen=True)
class Tokens:
    """Three distinct fresh token values, one per slot."""

    pending: str
    current: str
    previous: str

    @classmethod
    def fresh(cls) -> Tokens:
        return cls(generate_token(), generate_token(), generate_token())

    def of(self, slot: str) -> str:
        return str(getattr(self, slot))

    def all(self) -> tuple[str, str, str]:
        return (self.pending, self.current, self.previous)


def document_json(
    *,
    current: str | None = None,
    previous: str | None = None,
    pending: str | None = None,
    generation: int = 1,
) -> str:
    return TokenDocument(
        current=current,
        previous=previous,
        pending=pending,
        generation=generation,
        updated_at="2026-11-25T17:00:00Z",
    ).to_json()


def load_event(name: str = "http_api_authorizer_request") -> dict[str, Any]:
    data = json.loads((EVENTS / f"{name}.json").read_text())
    assert isinstance(data, dict)
    return data


_REQUEST = load_event()


def request_event(value: object, header: str = HEADER) -> dict[str, Any]:
    """The recorded CloudFront-forwarded HTTP API request, carrying *value* in *header*."""
    event = copy.deepcopy(_REQUEST)
    del event["headers"][HEADER]
    event["headers"][header] = value
    event["identitySource"] = [value]
    return event


@dataclass
class AuthorizerInstance:
    """One Lambda instance of the authorizer: the real handler module, fake ports."""

    parameter: FakeParameter
    clock: FakeClock
    environ: dict[str, str] = field(default_factory=dict)

    def __call__(self, event: object) -> dict[str, Any]:
        return authorizer.handler.lambda_handler(event, None)  # type: ignore[arg-type]
