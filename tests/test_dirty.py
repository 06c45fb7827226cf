"""A pass's dirty entities live in a temporary table (`syncd.store.dirty.DirtyIds`), not in
Python sets: they must behave as the sets did, per kind, in order, and with the transaction
they were written in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.store import Store
from syncd.store.dirty import DirtyIds, sorted_chunks
from syncd.store.unified import Entity


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "store.db")
    yield opened
    opened.close()


IDS = st.text(alphabet="abcdef0123456789_", min_size=1, max_size=6)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["add", "discard", "update"]), st.lists(IDS, max_size=8)),
        max_size=20,
    ),
    size=st.integers(min_value=1, max_value=5),
)
def test_behaves_as_a_set(store: Store, steps: list[tuple[str, list[str]]], size: int) -> None:
    dirty, expected = DirtyIds.fresh(store.db.conn, "person"), set()
    for action, ids in steps:
        if action == "add":
            for entity_id in ids:
                dirty.add(entity_id)
                expected.add(entity_id)
        elif action == "discard":
            for entity_id in ids:
                dirty.discard(entity_id)
                expected.discard(entity_id)
        else:
            dirty |= iter(ids)  # a generator, as `entity_ids` gives
            expected |= set(ids)
    chunks = list(dirty.chunks(size))
    assert [i for chunk in chunks for i in chunk] == sorted(expected)
    assert all(0 < len(chunk) <= size for chunk in chunks)
    assert len(dirty) == len(expected)
    assert list(sorted_chunks(dirty, size)) == chunks
    assert list(sorted_chunks(expected, size)) == chunks


def test_kinds_are_apart_and_fresh_forgets_a_kind(store: Store) -> None:
    people = DirtyIds.fresh(store.db.conn, "person")
    accounts = DirtyIds.fresh(store.db.conn, "account")
    people |= {"p1", "p2"}
    accounts.add("a1")
    assert list(people) == ["p1", "p2"] and list(accounts) == ["a1"]
    assert list(DirtyIds.fresh(store.db.conn, "person")) == []
    assert list(accounts) == ["a1"]


def test_ids_added_in_a_transaction_rolled_back_are_gone(store: Store) -> None:
    dirty = DirtyIds.fresh(store.db.conn, "person")
    dirty.add("kept")
    dirty.flush()
    with pytest.raises(RuntimeError), store.transaction():
        store.unified.set_state("some_state", "1")  # the batch's own writes
        dirty |= {"lost"}
        raise RuntimeError("the batch failed")
    assert list(dirty) == ["kept"] and store.unified.get_state("some_state") is None


def test_a_chunk_is_read_whole_so_the_set_may_grow_while_it_is_worked_through(
    store: Store,
) -> None:
    dirty = DirtyIds.fresh(store.db.conn, "opportunity")
    dirty |= {"o1", "o3"}
    seen = []
    for chunk in dirty.chunks(1):
        seen += chunk
        dirty |= {"o0", "o4"}  # o0 sorts before where the reading is: not seen this time
    assert seen == ["o1", "o3", "o4"] and len(dirty) == 4


def test_add_live_takes_every_entity_not_merged_away(store: Store) -> None:
    def entity(entity_id: str, merged_into: str | None = None) -> Entity:
        return Entity("person", entity_id, None, {}, {}, merged_into, 1, 1)

    with store.transaction():
        store.unified.save_entities([entity("p1"), entity("p2", merged_into="p1"), entity("p3")])
    dirty = DirtyIds.fresh(store.db.conn, "person")
    dirty.add("p9")
    dirty.add_live()
    assert list(dirty) == ["p1", "p3", "p9"]
