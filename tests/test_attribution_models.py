"""Golden tests of the seven attribution models and `custom` (ARCHITECTURE section 5), with
every expected number worked out by hand in the comments. The store-level cases (account
fallback, open against won) are at the end, on a store built by direct inserts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from syncd.attribution import (
    MODELS,
    CustomWeights,
    Touch,
    Window,
    allocate,
    milestones,
    ordered,
    shares,
    window_for,
)
from tests.test_credits import Book

D = Decimal
DAY0 = datetime(2025, 1, 1, tzinfo=UTC)
WIDE = Window(datetime(2024, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))


def touch(touch_id: str, day: float, kind: str, source_id: str | None = None) -> Touch:
    return Touch(
        touch_id, DAY0 + timedelta(days=day), kind, f"Label {touch_id}",
        kind in ("task", "event"), source_id or touch_id,
    )


def split(model: str, touches: list[Touch], created_day: float,
          window: Window = WIDE) -> dict[str, Decimal]:
    found = shares(model, touches, window, DAY0 + timedelta(days=created_day))
    return {key: value for key, value in found.items() if value}


# -- one touch ---------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_one_touch_takes_the_whole_amount_under_every_model(model: str) -> None:
    # One touch is every milestone and the whole rest: 100% of 1,234.56.
    only = [touch("a", 0, "email_click")]
    assert split(model, only, created_day=5) == {"a": D(1)}
    assert allocate(shares(model, only, WIDE, DAY0), D("1234.56")) == {"a": D("1234.56")}


# -- a touch holding several milestones -------------------------------------------------------

# a: form on day 1 = first and lead creation; b: email click on day 5 (no milestone);
# c: task on day 9 = the latest touch at or before CreatedDate (day 10) and the latest: close.
SEVERAL = [touch("a", 1, "form_submission"), touch("b", 5, "email_click"),
           touch("c", 9, "task")]

SEVERAL_EXPECTED = {
    "first_touch": {"a": D(1)},
    "last_touch": {"c": D(1)},
    # 1/3 each in 12 places: 0.333333333333 x 3 = 0.999999999999, the last unit to the earliest.
    "linear": {"a": D("0.333333333334"), "b": D("0.333333333333"), "c": D("0.333333333333")},
    # first 40% + lead creation 40% on a = 80%; the rest 20% to b and c (not milestones): 10%.
    "u_shaped": {"a": D("0.8"), "b": D("0.1"), "c": D("0.1")},
    # a: 30% + 30%; c: opportunity creation 30%; the rest 10% to b alone.
    "w_shaped": {"a": D("0.6"), "b": D("0.1"), "c": D("0.3")},
    # a: 22.5% x 2 = 45%; c: opportunity creation + close = 45%; the rest 10% to b.
    "full_path": {"a": D("0.45"), "b": D("0.1"), "c": D("0.45")},
    # custom defaults (30/30/30/0, rest 10) are w_shaped's numbers.
    "custom": {"a": D("0.6"), "b": D("0.1"), "c": D("0.3")},
}


@pytest.mark.parametrize("model", sorted(SEVERAL_EXPECTED))
def test_a_touch_holding_several_milestones_gets_their_sum(model: str) -> None:
    assert split(model, SEVERAL, created_day=10) == SEVERAL_EXPECTED[model]


def test_time_decay_halves_a_touch_every_seven_days_before_the_end() -> None:
    # Ages from the latest touch c (day 9): a 8 days, b 4 days, c 0.
    # Weights 2^(-8/7) = 0.452862, 2^(-4/7) = 0.672950, 1; sum 2.125812.
    # Shares 0.213030, 0.316561, 0.470408; of 1,000.00: 213.030, 316.561, 470.408 -> cents
    # 213.03 + 316.56 + 470.40 = 999.99, the missing cent to the largest remainder (c).
    found = shares("time_decay", SEVERAL, WIDE, DAY0 + timedelta(days=10))
    assert float(found["a"]) == pytest.approx(0.213030055045, abs=1e-12)
    assert float(found["b"]) == pytest.approx(0.316561445211, abs=1e-12)
    assert float(found["c"]) == pytest.approx(0.470408499744, abs=1e-12)
    assert sum(found.values()) == 1
    assert allocate(found, D("1000")) == {"a": D("213.03"), "b": D("316.56"), "c": D("470.41")}


def test_time_decay_does_not_move_when_an_open_window_end_moves() -> None:
    # 2^(-(end - t)/7d) normalized: the factor of the end cancels out.
    later = Window(WIDE.start, WIDE.end + timedelta(days=30))
    assert shares("time_decay", SEVERAL, WIDE, DAY0) == shares("time_decay", SEVERAL, later, DAY0)


def test_linear_amounts_add_up_to_the_amount_with_the_odd_cent_to_the_first() -> None:
    # 1,000.00 / 3 = 333.333...: 333.33 x 3 = 999.99, the odd cent to a (its share is larger).
    found = shares("linear", SEVERAL, WIDE, DAY0)
    assert allocate(found, D("1000.00")) == {"a": D("333.34"), "b": D("333.33"),
                                             "c": D("333.33")}


def test_milestones_are_chosen_as_specified() -> None:
    found = milestones(SEVERAL, DAY0 + timedelta(days=10))
    assert {name: t.id if t else None for name, t in found.items()} == {
        "first": "a", "lead_creation": "a", "opportunity_creation": "c", "close": "c"}


def test_a_missing_milestone_adds_its_share_to_the_rest() -> None:
    # No form or campaign response: lead creation has no touch. Created on day 0, before
    # every touch: opportunity creation has none either.
    # w_shaped: first (b) 30%; the rest 10% + 30% + 30% = 70% to c, the only other touch.
    touches = [touch("b", 5, "email_click"), touch("c", 9, "task")]
    assert split("w_shaped", touches, created_day=0) == {"b": D("0.3"), "c": D("0.7")}
    # u_shaped: first (b) 40%; rest 20% + 40% = 60% to c.
    assert split("u_shaped", touches, created_day=0) == {"b": D("0.4"), "c": D("0.6")}
    # full_path: b first 22.5%, c close 22.5%; no other touch: the rest 10% + 22.5% + 22.5%
    # = 55% is split between the milestone touches: 27.5% each -> 50% / 50%.
    assert split("full_path", touches, created_day=0) == {"b": D("0.5"), "c": D("0.5")}


def test_custom_weights_come_from_the_settings() -> None:
    # first 10%, lead creation 20%, opportunity creation 30%, close 40%, rest 0:
    # a = 10% + 20% = 30%; c = 30% + 40% = 70%; b (the rest) nothing.
    weights = CustomWeights(D("0.1"), D("0.2"), D("0.3"), D("0.4"), D("0"))
    found = shares("custom", SEVERAL, WIDE, DAY0 + timedelta(days=10), weights)
    assert {k: v for k, v in found.items() if v} == {"a": D("0.3"), "c": D("0.7")}


# -- no touches in the window ------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_no_touches_in_the_window_give_no_shares_and_no_amounts(model: str) -> None:
    narrow = Window(DAY0 + timedelta(days=100), DAY0 + timedelta(days=200))
    assert shares(model, SEVERAL, narrow, DAY0 + timedelta(days=150)) == {}
    assert allocate({}, D("500")) == {}


# -- ties at one instant -----------------------------------------------------------------------

# All at the same instant: ordered by kind (campaign_response, email_click, event,
# form_submission, task), then source id as text: cr, ec, fa (id "a"), fb (id "b").
TIED = [touch("fb", 3, "form_submission", "b"), touch("ec", 3, "email_click", "1"),
        touch("fa", 3, "form_submission", "a"), touch("cr", 3, "campaign_response", "9")]

TIED_EXPECTED = {
    "first_touch": {"cr": D(1)},
    "last_touch": {"fb": D(1)},
    "linear": {"cr": D("0.25"), "ec": D("0.25"), "fa": D("0.25"), "fb": D("0.25")},
    # cr: first + lead creation 80%; rest 20% / 3 = 0.0666...: 12 places, 2 spare units to the
    # earliest of the three (ec, fa).
    "u_shaped": {"cr": D("0.8"), "ec": D("0.066666666667"), "fa": D("0.066666666667"),
                 "fb": D("0.066666666666")},
    # cr 60%; fb opportunity creation (the latest at or before CreatedDate) 30%; rest 10% / 2.
    "w_shaped": {"cr": D("0.6"), "ec": D("0.05"), "fa": D("0.05"), "fb": D("0.3")},
    # cr 45%; fb opportunity creation + close 45%; rest 10% / 2.
    "full_path": {"cr": D("0.45"), "ec": D("0.05"), "fa": D("0.05"), "fb": D("0.45")},
    # Same instant, same age: equal weights.
    "time_decay": {"cr": D("0.25"), "ec": D("0.25"), "fa": D("0.25"), "fb": D("0.25")},
}


def test_ties_at_one_instant_are_ordered_by_kind_then_source_id() -> None:
    assert [t.id for t in ordered(TIED)] == ["cr", "ec", "fa", "fb"]


@pytest.mark.parametrize("model", sorted(TIED_EXPECTED))
def test_ties_at_one_instant_decide_milestones_by_that_order(model: str) -> None:
    assert split(model, TIED, created_day=4) == TIED_EXPECTED[model]


def test_source_ids_are_compared_as_text_not_as_numbers() -> None:
    # "10" < "9" as text.
    touches = [touch("nine", 1, "task", "9"), touch("ten", 1, "task", "10")]
    assert split("first_touch", touches, created_day=2) == {"ten": D(1)}


# -- touches outside the lookback ---------------------------------------------------------------


def test_the_window_runs_from_the_lookback_to_the_end_of_the_close_date() -> None:
    created = datetime(2025, 6, 1, 8, 30, tzinfo=UTC)
    won = window_for(created, date(2025, 7, 1), True, datetime(2026, 1, 1, tzinfo=UTC), 365)
    # 365 x 24 h before 2025-06-01 08:30 is 2024-06-01 08:30 (2024 is a leap year, but the
    # window counts hours, not calendar dates).
    assert won == Window(datetime(2024, 6, 1, 8, 30, tzinfo=UTC),
                         datetime(2025, 7, 1, 23, 59, 59, 999000, tzinfo=UTC))
    run_start = datetime(2025, 9, 1, tzinfo=UTC)
    assert window_for(created, date(2025, 7, 1), False, run_start, 365).end == run_start


@pytest.mark.parametrize("model", MODELS)
def test_touches_outside_the_lookback_or_after_the_close_date_do_not_count(model: str) -> None:
    created = datetime(2025, 6, 1, tzinfo=UTC)
    window = window_for(created, date(2025, 7, 1), True, created, 365)
    start, end = window.start, window.end
    touches = [
        Touch("too_early", start - timedelta(milliseconds=1), "form_submission", "x", False, "1"),
        Touch("at_start", start, "email_click", "x", False, "2"),
        Touch("at_end", end, "task", "x", True, "3"),
        Touch("too_late", end + timedelta(milliseconds=1), "form_submission", "x", False, "4"),
    ]
    found = shares(model, touches, window, created)
    # Both ends are included: the two touches on the edges share everything, the others get
    # no entry at all.
    assert set(found) == {"at_start", "at_end"}
    assert sum(found.values()) == 1


# -- store-level golden cases: account fallback, open against won -------------------------------


def test_an_opportunity_without_contact_roles_credits_every_contact_of_its_account(
    tmp_path: Path,
) -> None:
    book = Book(tmp_path)
    book.account("acc1")
    book.account("acc2")
    book.person("p1", contact="003A1", account="acc1")
    book.person("p2", contact="003A2", account="acc1")
    book.person("p3", contact="003B1", account="acc2")  # another account: not counted
    book.opportunity("opp1", "006A", account="acc1", created=DAY0 + timedelta(days=10),
                     close=date(2025, 2, 1), stage="closedwon", amount="900")
    book.touch("p1", DAY0 + timedelta(days=1), "form_submission", "Webinar")
    book.touch("p2", DAY0 + timedelta(days=5), "email_click", "Newsletter")
    book.touch("p2", DAY0 + timedelta(days=12), "task", "Sales: Call")
    book.touch("p3", DAY0 + timedelta(days=6), "form_submission", "Elsewhere")
    credits = book.compute()
    # Touches: Webinar (day 1: first, lead creation), Newsletter (day 5: the latest before
    # CreatedDate on day 10: opportunity creation), Call (day 12: close).
    # w_shaped of 900: Webinar 30% + 30% = 540; Newsletter 30% = 270; Call, the rest 10% = 90.
    assert credits("opp1", "w_shaped") == {"Webinar": D("540.00"), "Newsletter": D("270.00"),
                                           "Sales: Call": D("90.00")}
    # linear: 300 each; first_touch: Webinar; last_touch: the Call.
    assert credits("opp1", "linear") == {"Webinar": D("300.00"), "Newsletter": D("300.00"),
                                         "Sales: Call": D("300.00")}
    assert credits("opp1", "first_touch") == {"Webinar": D("900.00")}
    assert credits("opp1", "last_touch") == {"Sales: Call": D("900.00")}
    # full_path: Webinar 22.5% x 2 = 405; Newsletter 22.5% = 202.50; Call close 22.5% =
    # 202.50; the rest 10% has no non-milestone touch: split among the three, 30 each.
    assert credits("opp1", "full_path") == {"Webinar": D("435.00"), "Newsletter": D("232.50"),
                                            "Sales: Call": D("232.50")}


def test_contact_roles_win_over_the_account_in_hybrid_mode(tmp_path: Path) -> None:
    book = Book(tmp_path)
    book.account("acc1")
    book.person("p1", contact="003A1", account="acc1")
    book.person("p2", contact="003A2", account="acc1")
    book.opportunity("opp1", "006A", account="acc1", created=DAY0 + timedelta(days=10),
                     close=date(2025, 2, 1), stage="closedwon", amount="100", roles=["p2"])
    book.touch("p1", DAY0 + timedelta(days=1), "form_submission", "Webinar")
    book.touch("p2", DAY0 + timedelta(days=5), "email_click", "Newsletter")
    credits = book.compute()
    # Only p2 holds a contact role: the Newsletter click is the only touch, 100%.
    assert credits("opp1", "u_shaped") == {"Newsletter": D("100.00")}


def test_an_open_opportunity_counts_touches_up_to_the_run_and_a_won_one_up_to_its_close(
    tmp_path: Path,
) -> None:
    book = Book(tmp_path)
    book.person("p1", contact="003A1")
    created = DAY0 + timedelta(days=10)
    for opp, stage in (("open", "contractsent"), ("won", "closedwon")):
        book.opportunity(opp, f"006{opp}", created=created, close=date(2025, 1, 20),
                         stage=stage, amount="1000", roles=["p1"])
    book.touch("p1", DAY0 + timedelta(days=2), "form_submission", "Webinar")
    book.touch("p1", DAY0 + timedelta(days=30), "event", "Sales: Demo")  # after CloseDate
    credits = book.compute(run_start=DAY0 + timedelta(days=60))
    # Won: its window ends on 2025-01-20 23:59:59.999; the Demo (day 30) is outside:
    # the Webinar takes everything under every model.
    for model in MODELS:
        assert credits("won", model) == {"Webinar": D("1000.00")}
    # Open: the window runs to the run's start (day 60), the Demo counts.
    # w_shaped: Webinar first + lead creation + opportunity creation 90%; the rest 10% to the
    # Demo. last_touch: the Demo.
    assert credits("open", "w_shaped") == {"Webinar": D("900.00"), "Sales: Demo": D("100.00")}
    assert credits("open", "last_touch") == {"Sales: Demo": D("1000.00")}
    # Only the won one is revenue.
    desired = book.desired()
    assert desired.person_revenue == {"p1": D("1000.00")}
    assert desired.touch_labels == {"open": ("Webinar", "Sales: Demo"),
                                    "won": ("Webinar", "Webinar")}
