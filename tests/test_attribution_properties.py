"""Properties of every attribution model, for any opportunity with at least one touch: shares
are non-negative and add up to exactly 1, and the amounts add up to `Amount` within a cent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.attribution import (
    KIND_ORDER,
    MODELS,
    CustomWeights,
    Touch,
    Window,
    allocate,
    in_window,
    shares,
)

ORIGIN = datetime(2025, 1, 1, tzinfo=UTC)
# Hours on a coarse grid, so that ties at one instant are frequent.
hours = st.integers(min_value=-24 * 500, max_value=24 * 500).map(
    lambda h: ORIGIN + timedelta(hours=h // 6 * 6)
)


@st.composite
def touch_lists(draw: st.DrawFn) -> list[Touch]:
    count = draw(st.integers(min_value=1, max_value=25))
    kinds = draw(st.lists(st.sampled_from(KIND_ORDER), min_size=count, max_size=count))
    times = draw(st.lists(hours, min_size=count, max_size=count))
    sources = draw(st.lists(st.text("0123456789abc", min_size=1, max_size=3),
                            min_size=count, max_size=count))
    return [Touch(f"t{i}", at, kind, f"L{i % 4}", kind in ("task", "event"), source)
            for i, (kind, at, source) in enumerate(zip(kinds, times, sources, strict=True))]


amounts = st.decimals(min_value=Decimal("-1000000"), max_value=Decimal("100000000"),
                      places=2, allow_nan=False, allow_infinity=False)


def _weights(ws: list[int]) -> CustomWeights:
    """Five whole numbers as milestone and rest weights adding up to exactly 1."""
    first, lead, opportunity, close = (Decimal(w) / 100 for w in ws[:4])
    return CustomWeights(first, lead, opportunity, close, 1 - first - lead - opportunity - close)


weights = st.lists(st.integers(min_value=0, max_value=25), min_size=4, max_size=4).map(_weights)


@settings(max_examples=300, deadline=None)
@given(touches=touch_lists(), created=hours, start=hours, days=st.integers(1, 800),
       amount=amounts, custom=weights)
def test_every_model_shares_everything_and_amounts_add_up(
    touches: list[Touch], created: datetime, start: datetime, days: int, amount: Decimal,
    custom: CustomWeights,
) -> None:
    window = Window(start, start + timedelta(days=days))
    inside = in_window(touches, window)
    for model in MODELS:
        found = shares(model, touches, window, created, custom)
        if not inside:
            assert found == {}
            continue
        assert set(found) == {t.id for t in inside}
        assert all(share >= 0 for share in found.values())
        assert sum(found.values()) == 1
        money = allocate(found, amount)
        assert abs(sum(money.values()) - amount) <= Decimal("0.01")
        assert all(value * amount >= 0 for value in money.values())


@settings(max_examples=200, deadline=None)
@given(touches=touch_lists(), created=hours)
def test_shares_do_not_depend_on_the_order_touches_arrive_in(
    touches: list[Touch], created: datetime
) -> None:
    window = Window(ORIGIN - timedelta(days=600), ORIGIN + timedelta(days=600))
    for model in MODELS:
        assert shares(model, touches, window, created) == shares(
            model, list(reversed(touches)), window, created)
