"""Refused records against the emulators: parked with the CRM's reason while their batch-mates
land, shown by `syncd errors list`, exported by `syncd errors export`, applied by
`syncd errors retry` once the cause is fixed (the real CLI, in-process)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from syncd.cli import run
from syncd.errors import EXIT_OK, EXIT_REJECTED
from tests.harness import World

REFUSED = "Titles are chosen from the approved list"


class TitleRule:
    """A Salesforce validation rule an admin can switch off: refuses one Lead title."""

    def __init__(self, refused: str) -> None:
        self.refused: str | None = refused

    def __call__(self, record: Mapping[str, Any]) -> str | None:
        return REFUSED if self.refused and record.get("Title") == self.refused else None


def three_leads_edited_in_hubspot(world: World, refused_title: str) -> dict[str, str]:
    """Three Leads synced to HubSpot, then all three titles edited there: Lead email -> id."""
    leads = {
        email: str(world.org.insert("Lead", {"LastName": name, "Company": "Engines",
                                             "Email": email, "Title": "Countess"}))
        for email, name in (("ada@example.com", "Lovelace"), ("charles@example.com", "Babbage"),
                            ("mary@example.com", "Somerville"))
    }
    world.sync()
    world.clock.advance(minutes=1)
    titles = {"ada@example.com": refused_title, "charles@example.com": "Engineer",
              "mary@example.com": "Astronomer"}
    for hubspot_id in world.portal.ids("contacts"):
        email = world.portal.properties("contacts", hubspot_id)["email"]
        world.portal.update("contacts", hubspot_id, {"jobtitle": titles[str(email)]})
    return leads


@pytest.fixture
def refused(world: World) -> tuple[World, TitleRule, dict[str, str]]:
    rule = TitleRule("Mathematician")
    world.org.add_validation_rule("Lead", rule)
    leads = three_leads_edited_in_hubspot(world, "Mathematician")
    report = world.sync()
    assert (report.status, report.exit_code, report.rejected) == ("rejected", EXIT_REJECTED, 1)
    return world, rule, leads


def test_a_refused_record_is_parked_with_the_crms_reason_while_its_batch_mates_land(
    refused: tuple[World, TitleRule, dict[str, str]],
) -> None:
    world, _, leads = refused
    assert world.org.get("Lead", leads["charles@example.com"])["Title"] == "Engineer"
    assert world.org.get("Lead", leads["mary@example.com"])["Title"] == "Astronomer"
    assert world.org.get("Lead", leads["ada@example.com"])["Title"] == "Countess"
    store = world.store()
    try:
        (error,) = store.outbox.rows("error")
    finally:
        store.close()
    assert (error.system, error.object, error.record_id) == (
        "salesforce", "Lead", leads["ada@example.com"])
    assert error.fields == {"Title": "Mathematician"}
    assert (error.error_code, error.message, error.attempts) == (
        "FIELD_CUSTOM_VALIDATION_EXCEPTION", REFUSED, 1)


def test_a_parked_record_is_not_sent_again_every_pass(
    refused: tuple[World, TitleRule, dict[str, str]],
) -> None:
    world, _, _ = refused
    world.reset_counts()
    report = world.sync()
    assert world.writes() == 0
    assert report.exit_code == EXIT_OK
    store = world.store()
    try:
        assert [(r.status, r.attempts) for r in store.outbox.rows()] == [("error", 1)]
    finally:
        store.close()


def test_errors_list_shows_the_refused_record_and_its_reason(
    refused: tuple[World, TitleRule, dict[str, str]], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world, _, leads = refused
    monkeypatch.setenv("COLUMNS", "200")
    assert run(["errors", "list", "--config", str(world.config)]) == EXIT_OK
    out = capsys.readouterr().out
    words = set(out.replace("│", " ").split())
    assert "1 record(s) refused" in " ".join(out.split())
    assert leads["ada@example.com"] in words
    # Long cells wrap inside the table: the code and the reason are there word by word.
    assert any(word.startswith("FIELD_CUSTOM") for word in words)
    assert {"Titles", "approved"} <= words
    assert "syncd errors retry" in out


def test_errors_export_writes_the_refused_records_as_csv(
    refused: tuple[World, TitleRule, dict[str, str]], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    world, _, leads = refused
    out = tmp_path / "exports" / "refused.csv"
    assert run(["errors", "export", "--out", str(out), "--config", str(world.config)]) == EXIT_OK
    assert f"Wrote {out}." in capsys.readouterr().out
    (row,) = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert (row["system"], row["object"], row["record_id"]) == (
        "salesforce", "Lead", leads["ada@example.com"])
    assert (row["error_code"], row["message"], row["attempts"]) == (
        "FIELD_CUSTOM_VALIDATION_EXCEPTION", REFUSED, "1")
    assert json.loads(row["fields"]) == {"Title": "Mathematician"}
    assert run(["errors", "export", "--config", str(world.config)]) == EXIT_OK
    assert capsys.readouterr().out.startswith("id,system,object,record_id,")


def test_errors_retry_applies_the_record_once_the_cause_is_fixed(
    refused: tuple[World, TitleRule, dict[str, str]], capsys: pytest.CaptureFixture[str],
) -> None:
    world, rule, leads = refused
    rule.refused = None  # the admin relaxes the validation rule
    assert run(["errors", "retry", "--config", str(world.config)]) == EXIT_OK
    assert "1 refused record(s) queued again" in capsys.readouterr().out
    assert world.org.get("Lead", leads["ada@example.com"])["Title"] == "Mathematician"
    store = world.store()
    try:
        assert store.outbox.rows("error") == []
    finally:
        store.close()


def test_errors_retry_before_the_fix_parks_the_record_again_and_exits_1(
    refused: tuple[World, TitleRule, dict[str, str]],
) -> None:
    world, _, leads = refused
    assert run(["errors", "retry", "--config", str(world.config)]) == EXIT_REJECTED
    assert world.org.get("Lead", leads["ada@example.com"])["Title"] == "Countess"
    store = world.store()
    try:
        assert [(r.status, r.attempts) for r in store.outbox.rows()] == [("error", 2)]
    finally:
        store.close()


def test_an_injected_rejection_in_a_hubspot_batch_parks_only_that_contact(world: World) -> None:
    leads = {email: str(world.org.insert("Lead", {"LastName": "L", "Company": "C",
                                                  "Email": email}))
             for email in ("ada@example.com", "charles@example.com", "mary@example.com")}
    world.hubspot.faults.reject_record = (
        lambda obj, fields: obj == "contacts" and fields.get("email") == "charles@example.com"
    )
    report = world.sync()
    assert report.exit_code == EXIT_REJECTED
    emails = sorted(str(world.portal.properties("contacts", i)["email"])
                    for i in world.portal.ids("contacts"))
    assert emails == ["ada@example.com", "mary@example.com"]
    store = world.store()
    try:
        (error,) = store.outbox.rows("error")
    finally:
        store.close()
    assert (error.system, error.object, error.operation, error.key) == (
        "hubspot", "contacts", "upsert", "charles@example.com")
    assert error.message
    world.hubspot.faults.reject_record = None
    assert run(["errors", "retry", "--config", str(world.config)]) == EXIT_OK
    assert len(world.portal.ids("contacts")) == len(leads)
