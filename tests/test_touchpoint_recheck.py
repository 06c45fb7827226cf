"""A pass that changes who people are (a new email, a merge, a Lead or Contact linked to
someone else) moves their touches exactly as building every touchpoint afresh would: the
incremental pass reads each touch's key in SQL and rebuilds only the touches whose person
moved (`syncd.touchpoints._moved`), in both of its ways of reading (per person, or a walk of
every touch record when the people changed are most of the org)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from syncd import touchpoints
from syncd.model import Record
from syncd.store import Store
from syncd.store.unified import Entity, Link
from syncd.touchpoints import refresh_touchpoints, touch_of
from tests.test_touchpoint_build import WHOS, _store, _table, records

# What a pass may change about who people are.
CHANGES = ("new_email", "email_of_nobody", "merge_bob", "relink_contact", "relink_lead")


def _change(store: Store, changes: list[str], run: int) -> None:
    unified = store.unified
    people = unified.entities("person", ["ada", "bob"])
    ada, bob = people["ada"], people["bob"]
    saved: list[Entity] = []
    links: list[Link] = []
    for change in changes:
        if change == "new_email":
            ada.match_key = "carol@example.com"
        elif change == "email_of_nobody":
            bob.match_key = "nobody@example.com"
        elif change == "merge_bob":
            bob.merged_into = "ada"
        elif change == "relink_contact":
            links.append(Link("salesforce", "Contact", WHOS[0], "person", "bob"))
        else:
            links.append(Link("salesforce", "Lead", WHOS[1], "person", "ada", "converted"))
    for entity in (ada, bob):
        entity.updated_run = run
        saved.append(entity)
    with store.transaction():
        unified.save_entities(saved)
        unified.save_links(links, run)


def _bystanders(store: Store, count: int) -> None:
    """People of no touch, so that the people changed are few among many."""
    with store.transaction():
        store.unified.save_entities(
            [Entity("person", f"z{n:03d}", f"z{n}@example.com", {}, {}, None, 1, 1)
             for n in range(count)]
        )


@pytest.mark.parametrize("bystanders", [0, 20], ids=["walk every record", "per person"])
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(touches=records(), changes=st.lists(st.sampled_from(CHANGES), min_size=1, unique=True))
def test_touches_move_with_their_people_as_a_fresh_build_places_them(
    tmp_path_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    touches: list[Record],
    changes: list[str],
    bystanders: int,
) -> None:
    # The walk is for thousands of people changed; here two are, most of the org or not.
    monkeypatch.setattr(touchpoints, "_SCAN_FROM", 1)
    for record in touches:
        try:
            touch_of({"system": record.system, "object": record.object, "id": record.id,
                      "data": record.fields}, {})
        except (ValueError, TypeError, AttributeError, OverflowError):
            assume(False)  # a record the builders refuse (test_touchpoint_build covers those)
    folder: Path = tmp_path_factory.mktemp("recheck")
    passed = _store(folder / "incremental.db", touches)
    _bystanders(passed, bystanders)
    fresh = _store(folder / "fresh.db", touches)
    _bystanders(fresh, bystanders)
    _change(fresh, changes, 3)
    try:
        refresh_touchpoints(passed, 0, 2)
        refresh_touchpoints(fresh, 0, 3)
    except (ValueError, TypeError, AttributeError, OverflowError):
        assume(False)  # the builders refuse the record (test_touchpoint_build covers those)
    _change(passed, changes, 3)
    refresh_touchpoints(passed, 2, 3)
    assert _table(passed) == _table(fresh)
    passed.close()
    fresh.close()
