"""The attribution models (ARCHITECTURE section 5, "Attribution"): pure functions, no I/O.

A touch is one touchpoint of one of an opportunity's people. `window_for` gives the span of time
whose touches count, `milestones` picks the first, lead creation, opportunity creation and close
touches, and `shares` splits one opportunity between its touches under one model. Shares are
`Decimal`s quantized to 12 places that add up to exactly 1; `allocate` turns them into cents
that add up to exactly the opportunity's amount.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache
from typing import NamedTuple

__all__ = [
    "KIND_ORDER",
    "LEAD_KINDS",
    "MILESTONES",
    "MODELS",
    "SALES_KINDS",
    "AttributionSettings",
    "CustomWeights",
    "Touch",
    "Window",
    "allocate",
    "credits_of_ordered",
    "in_window",
    "milestones",
    "ordered",
    "shares",
    "shares_of_ordered",
    "window_for",
]

# Touches at one instant are ordered by kind, in this order, then by source id as text.
KIND_ORDER = ("campaign_response", "email_click", "event", "form_submission", "task")
LEAD_KINDS = frozenset({"form_submission", "campaign_response"})
SALES_KINDS = frozenset({"task", "event"})
MILESTONES = ("first", "lead_creation", "opportunity_creation", "close")
MODELS = (
    "first_touch",
    "last_touch",
    "linear",
    "u_shaped",
    "w_shaped",
    "full_path",
    "time_decay",
    "custom",
)
LINK_MODES = ("contact_roles", "account", "hybrid")

_QUANTUM = 10**12  # shares carry 12 decimal places: far below a cent on any real amount
_HALF_LIFE = timedelta(days=7)
_CENT = Decimal("0.01")


class Touch(NamedTuple):
    """One touchpoint as the models see it (a named tuple: a full computation makes a quarter
    of a million per 10,000 opportunities)."""

    id: str
    at: datetime
    kind: str
    label: str
    sales: bool
    source_id: str


@dataclass(frozen=True)
class Window:
    """Both ends included."""

    start: datetime
    end: datetime

    def holds(self, at: datetime) -> bool:
        return self.start <= at <= self.end


@dataclass(frozen=True)
class CustomWeights:
    """The `custom` model: a share per milestone and one for the rest, adding up to 1."""

    first: Decimal = Decimal("0.3")
    lead_creation: Decimal = Decimal("0.3")
    opportunity_creation: Decimal = Decimal("0.3")
    close: Decimal = Decimal("0")
    rest: Decimal = Decimal("0.1")

    def as_integers(self) -> tuple[dict[str, int], int]:
        """(milestone weights, rest weight) as integers over one common denominator."""
        values = [getattr(self, name) for name in (*MILESTONES, "rest")]
        places = max(0, *(-int(v.as_tuple().exponent) for v in values))
        scaled = [int(v.scaleb(places)) for v in values]
        return dict(zip(MILESTONES, scaled[:-1], strict=True)), scaled[-1]


@dataclass(frozen=True)
class AttributionSettings:
    """What `mappings/attribution.toml` says."""

    lookback_days: int = 365
    link_mode: str = "hybrid"
    include_sales_touches: bool = True
    written_model: str = "w_shaped"
    custom: CustomWeights = CustomWeights()

    def fingerprint(self) -> str:
        """Everything that changes credits, as text: part of each opportunity's input digest."""
        weights = self.custom
        return (
            f"{self.lookback_days}|{self.link_mode}|{self.include_sales_touches}|"
            f"{weights.first}|{weights.lead_creation}|{weights.opportunity_creation}|"
            f"{weights.close}|{weights.rest}"
        )


# Milestone shares and the rest of each milestone model (ARCHITECTURE's table), in thousandths:
# integer arithmetic keeps every share exact and is fast enough for a million touches.
_PER_MILLE = 1000
_MILESTONE_MODELS: Mapping[str, tuple[dict[str, int], int]] = {
    "first_touch": ({"first": 1000}, 0),
    "last_touch": ({"close": 1000}, 0),
    "u_shaped": ({"first": 400, "lead_creation": 400}, 200),
    "w_shaped": ({"first": 300, "lead_creation": 300, "opportunity_creation": 300}, 100),
    "full_path": ({name: 225 for name in MILESTONES}, 100),
}


_KIND_RANK = {kind: rank for rank, kind in enumerate(KIND_ORDER)}


def _sort_key(touch: Touch) -> tuple[datetime, int, str, str]:
    kind = _KIND_RANK.get(touch.kind, len(KIND_ORDER))
    # The touch id last: one record is one touch, so this only keeps the order total.
    return (touch.at, kind, touch.source_id, touch.id)


def ordered(touches: Iterable[Touch]) -> list[Touch]:
    """By time, then kind (KIND_ORDER), then source id compared as text."""
    return sorted(touches, key=_sort_key)


def window_for(
    created: datetime, close: date | None, is_closed: bool, run_start: datetime, lookback_days: int
) -> Window:
    """From exactly `lookback_days` x 24 h before CreatedDate to the end of CloseDate (UTC) for a
    closed opportunity, or to the run's start for an open one (or a closed one without a date)."""
    start = created - timedelta(hours=24 * lookback_days)
    if is_closed and close is not None:
        end = datetime.combine(close, time(23, 59, 59, 999000), tzinfo=UTC)
    else:
        end = run_start
    return Window(start, end)


def in_window(touches: Iterable[Touch], window: Window) -> list[Touch]:
    return ordered(t for t in touches if window.holds(t.at))


def milestones(touches_in_window: Sequence[Touch], created: datetime) -> dict[str, Touch | None]:
    """first (the earliest), lead_creation (the earliest form submission or campaign response),
    opportunity_creation (the latest touch at or before `created`), close (the latest)."""
    touches = ordered(touches_in_window)
    return {
        "first": touches[0] if touches else None,
        "lead_creation": next((t for t in touches if t.kind in LEAD_KINDS), None),
        "opportunity_creation": next((t for t in reversed(touches) if t.at <= created), None),
        "close": touches[-1] if touches else None,
    }


def shares(
    model: str,
    touches: Sequence[Touch],
    window: Window,
    created: datetime,
    weights: CustomWeights | None = None,
) -> dict[str, Decimal]:
    """Touch id -> share of the opportunity under `model`, for the touches inside `window`
    (touches outside it are left out). The shares add up to exactly 1; {} without touches."""
    return shares_of_ordered(model, in_window(touches, window), created, weights)


def shares_of_ordered(
    model: str, inside: Sequence[Touch], created: datetime, weights: CustomWeights | None = None
) -> dict[str, Decimal]:
    """`shares` for touches already inside the window and `ordered` (sorted once, shared by
    every model of one opportunity)."""
    inside = list(inside)
    if not inside:
        return {}
    if model == "linear":
        exact = {t.id: 1 for t in inside}
    elif model == "time_decay":
        exact = _time_decay(inside)
    elif model == "custom":
        exact = _milestone_split(inside, created, *(weights or CustomWeights()).as_integers())
    elif model in _MILESTONE_MODELS:
        exact = _milestone_split(inside, created, *_MILESTONE_MODELS[model])
    else:
        raise ValueError(f"unknown attribution model {model!r} (one of {', '.join(MODELS)})")
    return _quantized(exact, [t.id for t in inside])


def _milestone_split(
    touches: list[Touch], created: datetime, weights: Mapping[str, int], rest: int
) -> dict[str, int]:
    """Integer weights proportional to the shares (each milestone weight is multiplied by the
    number of touches the rest is split among, so that the split is exact)."""
    found = milestones(touches, created)
    held: dict[str, int] = {}
    for name, weight in weights.items():
        touch = found[name]
        if weight == 0:
            continue  # a milestone this model does not weigh: its touch is one of the rest
        if touch is None:
            rest += weight  # a milestone with no touch adds its share to the rest
        else:
            held[touch.id] = held.get(touch.id, 0) + weight
    others = [t.id for t in touches if t.id not in held] or list(held)
    split = {t.id: held.get(t.id, 0) * len(others) for t in touches}
    for touch_id in others:
        split[touch_id] += rest
    return split


def _time_decay(touches: list[Touch]) -> dict[str, int]:
    # Weight 2^(-age/7 days) with age measured back from the window's end. Normalizing cancels
    # the common factor 2^(-(end - latest)/7 days), so ages are taken from the latest touch:
    # the same shares, no underflow for old touches, and shares that do not move as an open
    # opportunity's window end (the run's start) moves. Weights are scaled to integers.
    latest = touches[-1].at
    return {t.id: int(2.0 ** (62 - (latest - t.at) / _HALF_LIFE)) for t in touches}


def _quantized(weights: Mapping[str, int], order: Sequence[str]) -> dict[str, Decimal]:
    """Integer weights -> Decimal shares of 12 places adding up to exactly 1 (largest
    remainder, ties to the earlier touch)."""
    total = sum(weights.values())
    units = {key: weights[key] * _QUANTUM // total for key in order}
    spare = _QUANTUM - sum(units.values())
    if spare:
        remainders = {key: weights[key] * _QUANTUM % total for key in order}
        _hand_out(units, remainders, spare, order)
    return {key: Decimal(units[key]).scaleb(-12) for key in order}


def _hand_out(
    units: dict[str, int], remainders: Mapping[str, int], spare: int, order: Sequence[str]
) -> None:
    """One more unit each to the `spare` largest remainders, ties to the earlier in `order`."""
    position = {key: index for index, key in enumerate(order)}
    rank = sorted(order, key=lambda key: (-remainders[key], position[key]))
    for key in rank[:spare]:
        units[key] += 1


def allocate(touch_shares: Mapping[str, Decimal], amount: Decimal | None) -> dict[str, Decimal]:
    """Share x amount in cents, adding up to exactly the amount rounded to cents: the cents
    lost to rounding go to the largest remainders (ties to the larger share, then the earlier
    touch), so the result is the same on every run."""
    total = (amount or Decimal(0)).quantize(_CENT, ROUND_HALF_EVEN)
    cents = int(abs(total) * 100)
    units = {key: int(share.scaleb(12)) for key, share in touch_shares.items()}
    order = sorted(units, key=lambda key: -units[key])
    whole = {key: units[key] * cents // _QUANTUM for key in order}
    spare = cents - sum(whole.values())
    if spare:
        remainders = {key: units[key] * cents % _QUANTUM for key in order}
        _hand_out(whole, remainders, spare, order)
    sign = -1 if total < 0 else 1
    return {key: Decimal(sign * whole[key]).scaleb(-2) for key in touch_shares}


# -- every model at once, in integers --
# A full computation credits a million and more touches: `credits_of_ordered` gives what
# `shares_of_ordered` then `allocate` give for each model, with the milestones found once and
# the same integer arithmetic on lists (no Decimals, no dicts per model).


def credits_of_ordered(
    inside: Sequence[Touch],
    created: datetime,
    weights: CustomWeights | None = None,
    amount: Decimal | None = None,
) -> list[tuple[str, str, float, float]]:
    """(model, touch id, share, amount) of every model in MODELS order, touches in order, for
    the touches with a share above 0: `float` of `shares_of_ordered` and `allocate`."""
    count = len(inside)
    ids = [t.id for t in inside]
    if not count or len(set(ids)) != count:
        return _credits_by_reference(inside, created, weights, amount)
    total = (amount or Decimal(0)).quantize(_CENT, ROUND_HALF_EVEN)
    cents, sign = int(abs(total) * 100), -1 if total < 0 else 1
    found = _milestone_positions(inside, created)
    custom = _integers(weights or CustomWeights())
    rows: list[tuple[str, str, float, float]] = []
    for model in MODELS:
        if model == "linear":
            exact = [1] * count
        elif model == "time_decay":
            latest = inside[-1].at
            exact = [int(2.0 ** (62 - (latest - t.at) / _HALF_LIFE)) for t in inside]
        else:
            split = custom if model == "custom" else _MILESTONE_MODELS[model]
            exact = _milestone_weights(count, found, *split)
        weight = sum(exact)
        if weight == 0:  # only custom weights of 0 everywhere: let the reference raise
            rows += _credits_by_reference(inside, created, weights, amount, (model,))
            continue
        units = _units(exact, weight)
        whole = _cents(units, cents)
        rows += [
            (model, touch, unit / _QUANTUM, sign * cent / 100)
            for touch, unit, cent in zip(ids, units, whole, strict=True)
            if unit > 0
        ]
    return rows


@cache
def _integers(weights: CustomWeights) -> tuple[dict[str, int], int]:
    return weights.as_integers()


def _credits_by_reference(
    inside: Sequence[Touch],
    created: datetime,
    weights: CustomWeights | None,
    amount: Decimal | None,
    models: Sequence[str] = MODELS,
) -> list[tuple[str, str, float, float]]:
    rows: list[tuple[str, str, float, float]] = []
    for model in models:
        split = shares_of_ordered(model, inside, created, weights)
        amounts = allocate(split, amount)
        rows += [
            (model, tid, float(share), float(amounts[tid]))
            for tid, share in split.items()
            if share > 0
        ]
    return rows


def _milestone_positions(touches: Sequence[Touch], created: datetime) -> dict[str, int | None]:
    """`milestones` as positions in the ordered touches."""
    count = len(touches)
    return {
        "first": 0,
        "lead_creation": next((i for i, t in enumerate(touches) if t.kind in LEAD_KINDS), None),
        "opportunity_creation": next(
            (i for i in range(count - 1, -1, -1) if touches[i].at <= created), None
        ),
        "close": count - 1,
    }


def _milestone_weights(
    count: int, found: Mapping[str, int | None], weights: Mapping[str, int], rest: int
) -> list[int]:
    """`_milestone_split` by position."""
    held: dict[int, int] = {}
    for name, weight in weights.items():
        position = found[name]
        if weight == 0:
            continue
        if position is None:
            rest += weight
        else:
            held[position] = held.get(position, 0) + weight
    if len(held) == count:  # no touch but milestones: the rest is split among them
        return [held[i] * count + rest for i in range(count)]
    split = [rest] * count
    others = count - len(held)
    for i, weight in held.items():
        split[i] = weight * others
    return split


# The two below hand the spare units to the largest remainders. Sorting with reverse=True is
# stable too: equal keys keep their order, so ties go to the earlier touch.


def _units(weights: list[int], total: int) -> list[int]:
    """`_quantized` in units of 10^-12 (ties to the earlier touch)."""
    units = [w * _QUANTUM // total for w in weights]
    spare = _QUANTUM - sum(units)
    if spare:
        remainders = [w * _QUANTUM % total for w in weights]
        for i in sorted(range(len(units)), key=remainders.__getitem__, reverse=True)[:spare]:
            units[i] += 1
    return units


def _cents(units: list[int], cents: int) -> list[int]:
    """`allocate` in whole cents (before the sign): ties to the larger share, then the earlier
    touch, as the stable sorts there give."""
    whole = [u * cents // _QUANTUM for u in units]
    spare = cents - sum(whole)
    if spare:
        keys = [(u * cents % _QUANTUM, u) for u in units]
        for i in sorted(range(len(units)), key=keys.__getitem__, reverse=True)[:spare]:
            whole[i] += 1
    return whole
