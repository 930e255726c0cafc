"""Properties of the cluster store, on the SQLite store's strategies."""

from __future__ import annotations

import json

import attrs
import pytest
from hypothesis import HealthCheck, assume, example, given, settings

from streamvisor.actors.background._errors import StoreError
from streamvisor.actors.background._records import TrackedResponse
from tests.actors.test_store import tracked

from ._support import node, rec, sql


def storable(record: TrackedResponse) -> bool:
    """PostgreSQL text and jsonb cannot hold NUL characters (SQLite can): see the store's
    docstring."""
    return "\\u0000" not in json.dumps(record.as_json())


class TestProperties:
    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],  # one database for all
    )
    @given(record=tracked())
    @example(record=rec(request={"big": 3.367404027539413e16, "tiny": 1e-300, "n": -2.5e20}))
    async def test_any_valid_record_round_trips(self, pg_dsn: str, record: TrackedResponse) -> None:
        """What add() stores, get() returns unchanged: unicode, big ints, nested JSON."""
        assume(storable(record))
        async with node(pg_dsn) as store:
            await store.add(record)
            try:
                assert await store.get(record.response_id) == record
            finally:
                await store.remove(record.response_id)

    async def test_a_nul_character_is_refused_alone_with_a_store_error(self, pg_dsn: str) -> None:
        async with node(pg_dsn) as store:
            await store.add(rec("fine"))
            with pytest.raises(StoreError, match=r"NUL character \(U\+0000\) in request"):
                await store.add(rec("nul", request={"input": ["a\x00b"]}))
            with pytest.raises(StoreError, match="in metadata"):
                await store.add(rec("nul", metadata={"\x00": 1}))
            with pytest.raises(StoreError, match="in owner"):
                await store.update("fine", owner="a\x00b")
            assert await store.get("fine") == attrs.evolve(rec("fine"))
        assert sql(pg_dsn, "SELECT response_id FROM responses") == [("fine",)]
