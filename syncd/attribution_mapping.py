"""`mappings/attribution.toml`: the lookback (1 to 3650 days), the link mode, whether sales
touches count, the model written back and the `custom` model's weights. Loaded and validated
like the other mapping files: every problem at once, one line each, naming file, section and
key."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from syncd.attribution import LINK_MODES, MILESTONES, MODELS, AttributionSettings, CustomWeights
from syncd.errors import MappingError
from syncd.mapping_files import Report, display, mapping_path, read_document, suggestion

__all__ = ["load_attribution"]

SECTIONS = ("attribution", "custom")
KEYS = ("lookback_days", "link_mode", "include_sales_touches", "written_model")
WEIGHTS = (*MILESTONES, "rest")
# Ten years: more than any sales cycle, and far inside the dates Python can count back to.
MAX_LOOKBACK_DAYS = 3650
_DEFAULTS = AttributionSettings()


def load_attribution(folder: Path | None) -> AttributionSettings:
    """`attribution.toml` from the mappings folder (else the installed default); MappingError
    lists every problem."""
    path = mapping_path(folder, "attribution")
    report = Report(display(path))
    document = read_document(path, report)
    settings = None if document is None else _settings(document, report)
    if report.problems or settings is None:
        raise MappingError(report.problems)
    return settings


def _settings(document: dict[str, Any], report: Report) -> AttributionSettings | None:
    for name in document:
        if name not in SECTIONS:
            report.add(
                name,
                None,
                f"not a section of attribution.toml (sections: {', '.join(SECTIONS)})."
                f"{suggestion(name, SECTIONS, '[{}]')}",
            )
    main = _table(document.get("attribution", {}), "attribution", KEYS, report)
    custom = _custom(_table(document.get("custom", {}), "custom", WEIGHTS, report), report)
    lookback = _lookback(main.get("lookback_days", _DEFAULTS.lookback_days), report)
    link_mode = _choice(main, "link_mode", LINK_MODES, _DEFAULTS.link_mode, report)
    written = _choice(main, "written_model", MODELS, _DEFAULTS.written_model, report)
    sales = main.get("include_sales_touches", _DEFAULTS.include_sales_touches)
    if not isinstance(sales, bool):
        report.add(
            "attribution", "include_sales_touches", f"must be true or false, not {sales!r}."
        )
    if report.problems or lookback is None or link_mode is None or written is None:
        return None
    assert custom is not None  # no problem reported: the weights were read
    return AttributionSettings(lookback, link_mode, bool(sales), written, custom)


def _table(raw: Any, section: str, keys: tuple[str, ...], report: Report) -> dict[str, Any]:
    if not isinstance(raw, dict):
        report.add(section, None, f"must be a table ([{section}] with key = value lines).")
        return {}
    for key in raw:
        if key not in keys:
            report.add(
                section,
                key,
                f"not a key of [{section}] (keys: {', '.join(keys)}).{suggestion(key, keys)}",
            )
    return raw


def _lookback(value: Any, report: Report) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        report.add(
            "attribution",
            "lookback_days",
            f"must be a whole number of days, 1 or more (365 is a year); not {value!r}.",
        )
        return None
    if value > MAX_LOOKBACK_DAYS:
        report.add(
            "attribution",
            "lookback_days",
            f"must be at most {MAX_LOOKBACK_DAYS} days (ten years); not {value!r}.",
        )
        return None
    return value


def _choice(
    raw: dict[str, Any], key: str, allowed: tuple[str, ...], default: str, report: Report
) -> str | None:
    value = raw.get(key, default)
    if isinstance(value, str) and value in allowed:
        return value
    hint = suggestion(value, allowed) if isinstance(value, str) else ""
    report.add("attribution", key, f"{value!r} is not one of {', '.join(allowed)}.{hint}")
    return None


def _custom(raw: dict[str, Any], report: Report) -> CustomWeights | None:
    defaults = CustomWeights()
    weights: dict[str, Decimal] = {}
    for name in WEIGHTS:
        value = raw.get(name, getattr(defaults, name))
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal) or value < 0:
            report.add(
                "custom", name, f"must be a number from 0 to 1 (0.25 = 25%); not {value!r}."
            )
            continue
        # Through text, so that 0.1 is one tenth and not the float nearest to it.
        weights[name] = Decimal(str(value))
    if len(weights) < len(WEIGHTS):
        return None
    total = sum(weights.values(), Decimal(0))
    if total != 1:
        report.add(
            "custom",
            None,
            f"the shares must add up to 1; {' + '.join(str(weights[n]) for n in WEIGHTS)} = "
            f"{total}. Lower or raise one of them.",
        )
        return None
    return CustomWeights(**weights)
