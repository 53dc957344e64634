"""The emulated KeyValueStore: the data-plane API's ETag rules, and when each edge sees a write."""

from __future__ import annotations

import random

import pytest

from originlock.sandbox.kvs import (
    MAX_VALUE_BYTES,
    ConflictError,
    EmulatedKeyValueStore,
    ResourceNotFoundError,
    ValidationError,
)
from tests.unit.fakes import FakeClock
from tokens.document import generate_token

ARN = "arn:aws:cloudfront::123456789012:key-value-store/6b1c4d28-6ac1-4d0e-9d53-4ef1b8a0f1c3"
T0 = 1_800_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


def store_with(clock: FakeClock, edges: int = 3, **kwargs: object) -> EmulatedKeyValueStore:
    return EmulatedKeyValueStore(ARN, edges, clock=clock, **kwargs)  # type: ignore[arg-type]


def test_edge_kvs_write_needs_the_current_etag_and_returns_a_new_one(clock: FakeClock) -> None:
    store = store_with(clock)
    etag = store.describe()["ETag"]

    written = store.put_key("signing-key", generate_token(), etag)

    assert written["ETag"] != etag
    assert store.describe()["ETag"] == written["ETag"]
    assert (written["ItemCount"], store.describe()["ItemCount"]) == (1, 1)


def test_edge_kvs_refuses_a_stale_etag_with_conflict(clock: FakeClock) -> None:
    store = store_with(clock)
    stale = store.describe()["ETag"]
    store.put_key("signing-key", generate_token(), stale)

    with pytest.raises(ConflictError) as caught:
        store.update_keys(stale, puts=[{"Key": "signing-key", "Value": generate_token()}])

    assert caught.value.code == "ConflictException"


def test_edge_kvs_refuses_a_write_without_etag(clock: FakeClock) -> None:
    store = store_with(clock)

    with pytest.raises(ValidationError):
        store.put_key("signing-key", generate_token(), "")


def test_edge_kvs_update_keys_is_all_or_nothing(clock: FakeClock) -> None:
    # Given a store with a key
    store = store_with(clock)
    old = generate_token()
    etag = store.put_key("signing-key", old, store.describe()["ETag"])["ETag"]

    # When an update carries one good put and one value over 1 KB
    with pytest.raises(ValidationError):
        store.update_keys(
            etag,
            puts=[
                {"Key": "signing-key", "Value": generate_token()},
                {"Key": "other", "Value": "x" * (MAX_VALUE_BYTES + 1)},
            ],
        )

    # Then nothing changed
    assert store.get_key("signing-key")["Value"] == old
    assert store.describe()["ETag"] == etag


def test_edge_kvs_puts_and_deletes_in_one_update(clock: FakeClock) -> None:
    store = store_with(clock)
    etag = store.put_key("a", "1", store.describe()["ETag"])["ETag"]

    result = store.update_keys(etag, puts=[{"Key": "b", "Value": "2"}], deletes=[{"Key": "a"}])

    assert result["ItemCount"] == 1
    assert store.list_keys()["Items"] == [{"Key": "b", "Value": "2"}]
    with pytest.raises(ResourceNotFoundError):
        store.get_key("a")


def test_edge_kvs_never_shows_a_value_in_describe_repr_or_errors(clock: FakeClock) -> None:
    store = store_with(clock)
    secret = generate_token()
    stale = store.describe()["ETag"]
    store.put_key("signing-key", secret, stale)

    with pytest.raises(ConflictError) as caught:
        store.put_key("signing-key", secret, stale)

    shown = [str(store.describe()), repr(store), repr(store.latest), str(caught.value)]
    assert not any(secret in text for text in shown)


def test_edge_kvs_each_edge_sees_a_write_at_its_own_moment(clock: FakeClock) -> None:
    # Given three edges that pick up writes 1 s, 3 s and 6 s after them
    delays = {0: 1.0, 1: 3.0, 2: 6.0}
    store = store_with(clock, delay=lambda version, edge: delays[edge])
    old, new = generate_token(), generate_token()
    etag = store.put_key("signing-key", old, store.describe()["ETag"])["ETag"]
    clock.advance(10)
    assert all(store.edge_view(edge) == {"signing-key": old} for edge in range(3))

    # When the key changes
    store.put_key("signing-key", new, etag)

    # Then each edge switches at its own moment, and only then is the write everywhere
    seen = []
    for _ in range(7):
        seen.append(tuple(store.edge_view(edge)["signing-key"] == new for edge in range(3)))  # type: ignore[index]
        assert store.propagated() == all(seen[-1])
        clock.advance(1)
    assert seen == [
        (False, False, False),
        (True, False, False),
        (True, False, False),
        (True, True, False),
        (True, True, False),
        (True, True, False),
        (True, True, True),
    ]


def test_edge_kvs_random_delays_stay_in_the_window_and_never_go_back(clock: FakeClock) -> None:
    # Given random delays in [2, 8] s over many edges and a burst of writes
    store = store_with(clock, edges=40, propagation=(2.0, 8.0), rng=random.Random(7))
    etag = store.describe()["ETag"]
    for value in range(5):
        etag = store.put_key("k", str(value), etag)["ETag"]
        clock.advance(0.5)
    last_write = clock.now - 0.5

    # Then every edge only moves forward, and all have the last write within 8 s of it
    previous = [-1] * 40
    while clock.now <= last_write + 8.0:
        for edge in range(40):
            version = store.visible_version(edge)
            assert version is not None and version.number >= previous[edge]
            previous[edge] = version.number
        clock.advance(0.25)
    assert store.propagated()
    assert last_write + 2.0 <= store.fully_propagated_at() <= last_write + 8.0


def test_edge_kvs_an_unreadable_edge_reads_nothing_for_a_while(clock: FakeClock) -> None:
    store = store_with(clock, propagation=(0.0, 0.0))
    store.put_key("signing-key", generate_token(), store.describe()["ETag"])

    store.make_unreadable(1, seconds=5)

    assert store.edge_view(1) is None and store.edge_view(0) is not None
    clock.advance(5)
    assert store.edge_view(1) is not None


def test_edge_kvs_checks_its_arguments(clock: FakeClock) -> None:
    with pytest.raises(ValueError):
        EmulatedKeyValueStore(ARN, 0)
    with pytest.raises(ValueError):
        EmulatedKeyValueStore(ARN, 2, propagation=(5.0, 1.0))
    store = store_with(clock)
    with pytest.raises(ValidationError):
        store.put_key("k" * 513, "v", store.describe()["ETag"])
    with pytest.raises(ValueError):
        store.edge_view(3)


def test_edge_kvs_created_with_data_has_it_at_every_edge_at_once(clock: FakeClock) -> None:
    # Given a store created from an import source (as the sandbox deploys its first key)
    key = generate_token()
    store = store_with(clock, initial={"signing-key": key}, propagation=(5.0, 9.0))

    # Then every edge reads it now, and it counts in the store's size
    assert all(store.edge_view(edge) == {"signing-key": key} for edge in range(3))
    assert store.describe()["ItemCount"] == 1
    # A later write still takes its propagation time
    new = generate_token()
    store.put_key("signing-key", new, store.describe()["ETag"])
    assert store.edge_view(0) == {"signing-key": key}
    # Every value it ever held is known (for the secret scans), never shown
    assert store.values_ever() == {key, new}
    assert key not in repr(store) and new not in repr(store)


def test_edge_kvs_refuses_initial_data_over_the_limits(clock: FakeClock) -> None:
    with pytest.raises(ValidationError):
        store_with(clock, initial={"signing-key": "x" * (MAX_VALUE_BYTES + 1)})
