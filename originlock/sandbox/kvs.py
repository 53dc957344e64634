"""A local CloudFront KeyValueStore: the data-plane API, and what each edge sees when.

moto has no ``cloudfront-keyvaluestore`` (../shared/FACTS.md). This emulates the parts
originlock uses, with the real API's shapes and errors:

* ``DescribeKeyValueStore`` / ``GetKey`` / ``ListKeys`` / ``PutKey`` / ``DeleteKey`` /
  ``UpdateKeys``: every write needs the store's current ETag (``IfMatch``) and returns a new
  one; a stale ETag raises ``ConflictException``, as AWS does. Keys are 1-512 bytes, values at
  most 1 KB, the store at most 5 MB (``ValidationException`` / ``ServiceQuotaExceededException``).
* Propagation: each write reaches each edge at its own moment, drawn in a configurable window
  after the write (AWS states no figure; reports say seconds). An edge never goes back to an
  older version. An edge can be made unable to read its store (the function's ``kvs.get``
  then fails).

Time is injected (``clock``), so tests move it by hand. Values never appear in a ``repr``, an
exception or :meth:`describe`.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

MAX_KEY_BYTES = 512
MAX_VALUE_BYTES = 1024
MAX_STORE_BYTES = 5 * 1024 * 1024
DEFAULT_PROPAGATION = (0.5, 5.0)
_store_serials = itertools.count(1)


class KeyValueStoreError(Exception):
    """An error of the emulated data plane; ``code`` is the AWS error code."""

    code = "InternalServerException"

    def __init__(self, message: str) -> None:
        super().__init__(f"{self.code}: {message}")
        self.message = message


class ConflictError(KeyValueStoreError):
    code = "ConflictException"


class ValidationError(KeyValueStoreError):
    code = "ValidationException"


class ResourceNotFoundError(KeyValueStoreError):
    code = "ResourceNotFoundException"


class ServiceQuotaExceededError(KeyValueStoreError):
    code = "ServiceQuotaExceededException"


@dataclass(frozen=True)
class Version:
    """One state of the store: what a write left behind."""

    number: int
    etag: str
    written_at: float
    data: Mapping[str, str] = field(repr=False)
    # When each edge starts seeing this version (true time, not an edge's clock).
    arrivals: tuple[float, ...] = field(repr=False)


def _size(data: Mapping[str, str]) -> int:
    return sum(len(k.encode("utf-8")) + len(v.encode("utf-8")) for k, v in data.items())


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


class EmulatedKeyValueStore:
    """One KeyValueStore, as the API and as ``edges`` edge locations see it.

    Parameters
    ----------
    arn:
        The store's ARN (``arn:aws:cloudfront::<account>:key-value-store/<id>``).
    edges:
        How many edge locations read it.
    clock:
        True time in unix seconds (``time.time`` by default); tests pass a fake.
    propagation:
        ``(min, max)`` seconds after a write within which each edge picks it up, uniformly.
    rng:
        The random source of the propagation delays (seed it for reproducible tests).
    delay:
        Instead of random delays: ``delay(version_number, edge) -> seconds``.
    initial:
        What the store holds when it is created, already at every edge (CloudFront creates a
        store from an import source that way: ``CreateKeyValueStore`` with ``ImportSource``).
    """

    def __init__(
        self,
        arn: str,
        edges: int,
        *,
        clock: Callable[[], float] = time.time,
        propagation: tuple[float, float] = DEFAULT_PROPAGATION,
        rng: random.Random | None = None,
        delay: Callable[[int, int], float] | None = None,
        initial: Mapping[str, str] | None = None,
    ) -> None:
        if edges < 1:
            raise ValueError("a store is read by at least one edge")
        low, high = propagation
        if not 0 <= low <= high:
            raise ValueError("propagation must be (min, max) with 0 <= min <= max")
        self.arn = arn
        # Names this store among all in the process: a view is (serial, version number).
        self.serial = next(_store_serials)
        self.edges = edges
        self.clock = clock
        self.propagation = propagation
        self._rng = rng or random.Random()
        self._delay = delay
        self._lock = threading.Lock()
        self.created = clock()
        data = {self._check_key(k): self._check_value(v) for k, v in (initial or {}).items()}
        if _size(data) > MAX_STORE_BYTES:
            raise ServiceQuotaExceededError("the store would exceed 5 MB")
        self._versions: list[Version] = [self._version(0, data, self.created, immediate=True)]
        self._unreadable: dict[int, float] = {}  # edge -> unreadable until (true time)

    def __repr__(self) -> str:
        latest = self._versions[-1]
        return (
            f"EmulatedKeyValueStore(arn={self.arn!r}, version={latest.number}, edges={self.edges})"
        )

    # -- versions ---------------------------------------------------------
    def _version(
        self, number: int, data: Mapping[str, str], now: float, *, immediate: bool = False
    ) -> Version:
        arrivals = tuple(
            now if immediate else now + self._delay_of(number, edge) for edge in range(self.edges)
        )
        etag = f"ETVPDKIKX{number:06d}"
        return Version(number, etag, now, MappingProxyType(dict(data)), arrivals)

    def _delay_of(self, number: int, edge: int) -> float:
        if self._delay is not None:
            return max(0.0, float(self._delay(number, edge)))
        low, high = self.propagation
        return self._rng.uniform(low, high)

    @property
    def latest(self) -> Version:
        return self._versions[-1]

    def _check_etag(self, if_match: object) -> None:
        if not isinstance(if_match, str) or not if_match:
            raise ValidationError("IfMatch is required")
        if if_match != self._versions[-1].etag:
            raise ConflictError("the ETag does not match the store's current version")

    def _write(self, data: dict[str, str]) -> dict[str, Any]:
        size = _size(data)
        if size > MAX_STORE_BYTES:
            raise ServiceQuotaExceededError("the store would exceed 5 MB")
        version = self._version(self._versions[-1].number + 1, data, self.clock())
        self._versions.append(version)
        return {"ETag": version.etag, "ItemCount": len(data), "TotalSizeInBytes": size}

    @staticmethod
    def _check_key(key: object) -> str:
        if not isinstance(key, str) or not 1 <= len(key.encode("utf-8")) <= MAX_KEY_BYTES:
            raise ValidationError(f"a key is 1-{MAX_KEY_BYTES} bytes")
        return key

    @staticmethod
    def _check_value(value: object) -> str:
        if not isinstance(value, str) or len(value.encode("utf-8")) > MAX_VALUE_BYTES:
            raise ValidationError(f"a value is a string of at most {MAX_VALUE_BYTES} bytes")
        return value

    # -- the data-plane API (shapes as boto3 returns them) ------------------
    def describe(self) -> dict[str, Any]:
        """``DescribeKeyValueStore``: ETag, counts and dates, never a value."""
        with self._lock:
            latest = self._versions[-1]
            return {
                "KvsARN": self.arn,
                "ItemCount": len(latest.data),
                "TotalSizeInBytes": _size(latest.data),
                "Created": _iso(self.created),
                "ETag": latest.etag,
                "LastModified": _iso(latest.written_at),
                "Status": "READY",
            }

    def get_key(self, key: str) -> dict[str, Any]:
        """``GetKey`` (the control plane's view: the latest write, whatever the edges see)."""
        with self._lock:
            data = self._versions[-1].data
            if key not in data:
                raise ResourceNotFoundError("the key does not exist")
            return {
                "Key": key,
                "Value": data[key],
                "ItemCount": len(data),
                "TotalSizeInBytes": _size(data),
            }

    def writes(self) -> list[tuple[float, float]]:
        """``(written at, last edge picked it up at)`` of every write since creation (true
        time): the store's own propagation, which the benchmarks subtract from a rotation."""
        with self._lock:
            return [(v.written_at, max(v.arrivals)) for v in self._versions[1:]]

    def values_ever(self, key: str | None = None) -> set[str]:
        """Every value any version of the store has held under *key* (any key when ``None``):
        for secret scans, never printed."""
        with self._lock:
            return {
                value
                for version in self._versions
                for name, value in version.data.items()
                if key is None or name == key
            }

    def list_keys(self) -> dict[str, Any]:
        with self._lock:
            data = self._versions[-1].data
            return {"Items": [{"Key": k, "Value": v} for k, v in sorted(data.items())]}

    def put_key(self, key: str, value: str, if_match: str) -> dict[str, Any]:
        return self.update_keys(if_match, puts=[{"Key": key, "Value": value}])

    def delete_key(self, key: str, if_match: str) -> dict[str, Any]:
        with self._lock:
            if key not in self._versions[-1].data:
                raise ResourceNotFoundError("the key does not exist")
        return self.update_keys(if_match, deletes=[{"Key": key}])

    def update_keys(
        self,
        if_match: str,
        puts: Iterable[Mapping[str, str]] = (),
        deletes: Iterable[Mapping[str, str]] = (),
    ) -> dict[str, Any]:
        """``UpdateKeys``: puts and deletes in one all-or-nothing write."""
        with self._lock:
            self._check_etag(if_match)
            data = dict(self._versions[-1].data)
            for item in deletes:
                data.pop(self._check_key(item.get("Key")), None)
            for item in puts:
                data[self._check_key(item.get("Key"))] = self._check_value(item.get("Value"))
            return self._write(data)

    # -- the edges' side ------------------------------------------------------
    def visible_version(self, edge: int, now: float | None = None) -> Version | None:
        """The version edge *edge* reads at true time *now*; ``None`` while it cannot read."""
        if not 0 <= edge < self.edges:
            raise ValueError(f"no edge {edge}")
        moment = self.clock() if now is None else now
        with self._lock:
            if self._unreadable.get(edge, float("-inf")) > moment:
                return None
            for version in reversed(self._versions):
                if version.arrivals[edge] <= moment:
                    return version
            return self._versions[0]

    def edge_view(self, edge: int, now: float | None = None) -> Mapping[str, str] | None:
        """What ``kvs.get`` reads at edge *edge* at true time *now*; ``None``: it fails."""
        version = self.visible_version(edge, now)
        return None if version is None else version.data

    def propagated(self, now: float | None = None) -> bool:
        """Whether every edge reads the latest write."""
        moment = self.clock() if now is None else now
        with self._lock:
            return max(self._versions[-1].arrivals) <= moment

    def fully_propagated_at(self) -> float:
        """When the last edge picks up the latest write (true time)."""
        with self._lock:
            return max(self._versions[-1].arrivals)

    def make_unreadable(self, edge: int, seconds: float) -> None:
        """Edge *edge* fails every read for *seconds* from now."""
        with self._lock:
            self._unreadable[edge] = self.clock() + seconds
