"""`mappings/lifecycle.toml` validation through `syncd check`, in-process: a corpus of malformed
lifecycle files, each answered by exactly one line naming the file, the section and the key,
with exit 2; and the shipped file and its documented examples pass."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from syncd.cli import run
from syncd.errors import EXIT_USAGE
from syncd.stages import load_lifecycle

DEFAULTS = Path(__file__).resolve().parents[1] / "syncd" / "default_mappings"
DEFAULT = (DEFAULTS / "lifecycle.toml").read_text(encoding="utf-8")
FILE = "mappings/lifecycle.toml"
LEAD_STATUS_LINE = '"Working - Contacted" = "salesqualifiedlead"\n'

# What a pass needs, and so `syncd check` asks for (the tokens are never used offline).
CREDENTIALS = (
    '[hubspot]\naccess_token = "pat-na1-check"\n'
    '[salesforce]\naccess_token = "00D000000000001!AQcheck"\n'
)


def edited(old: str, new: str) -> str:
    assert DEFAULT.count(old) == 1, old
    return DEFAULT.replace(old, new)


def appended(text: str) -> str:
    return DEFAULT + "\n" + text


def without_stage_tables() -> str:
    return re.sub(r'\[\[stages\]\]\nhubspot = "[^"]+"\nsalesforce = "[^"]+"\n+', "", DEFAULT)


MINIMAL_STAGES = """
[[stages]]
hubspot = "lead"
salesforce = "Lead"

[[stages]]
hubspot = "marketingqualifiedlead"
salesforce = "MQL"
"""
MINIMAL_TAIL = """
[signals]
lead_or_contact = "lead"
converted = "lead"
open_opportunity = "lead"
won_opportunity = "lead"
"""

# (case, file text, the one line `syncd check` must answer)
CORPUS: list[tuple[str, str, str]] = [
    ("unknown_section", appended('[recylce.lost]\nlost_after_days = 9\nto = "lead"\n'),
     f"{FILE}: unknown section [recylce]. Did you mean [recycle]?"),
    ("no_stages", without_stage_tables(),
     f"{FILE} [stages]: expected one [[stages]] table per stage, lowest first."),
    ("stages_not_tables", 'stages = ["lead"]\n' + MINIMAL_TAIL,
     f"{FILE} [stages.1]: expected a table with hubspot and salesforce."),
    ("stage_without_label", edited('salesforce = "MQL"\n', ""),
     f"{FILE} [stages.3] salesforce: expected the stage's name as text."),
    ("stage_value_not_text", edited('hubspot = "evangelist"', "hubspot = 7"),
     f"{FILE} [stages.7] hubspot: expected the stage's name as text."),
    ("stage_key_misspelt", edited('salesforce = "MQL"', 'salesfroce = "MQL"'),
     f'{FILE} [stages.3] salesfroce: unknown key. Did you mean "salesforce"?'),
    ("stage_listed_twice", appended('[[stages]]\nhubspot = "lead"\nsalesforce = "Lead again"\n'),
     f'{FILE} [stages.8] hubspot: "lead" is listed twice.'),
    ("label_listed_twice", edited('salesforce = "SQL"', 'salesforce = "mql"'),
     f'{FILE} [stages.4] salesforce: "mql" is listed twice.'),
    ("signal_names_no_stage", edited('lead_or_contact = "lead"', 'lead_or_contact = "leed"'),
     f'{FILE} [signals] lead_or_contact: "leed" is not one of the [[stages]]. '
     'Did you mean "lead"?'),
    ("signal_missing", edited('converted = "salesqualifiedlead"\n', ""),
     f"{FILE} [signals] converted: missing: name a stage by its HubSpot value."),
    ("signal_misspelt", edited('won_opportunity = "customer"', 'won_opportunities = "customer"'),
     f'{FILE} [signals] won_opportunities: unknown key. Did you mean "won_opportunity"?'),
    ("signal_unknown", edited('link_mode = "hybrid"', 'link_mode = "hybrid"\nwebinar = "lead"'),
     f"{FILE} [signals] webinar: unknown key."),
    ("link_mode_misspelt", edited('link_mode = "hybrid"', 'link_mode = "acount"'),
     f'{FILE} [signals] link_mode: "acount" is not a link mode; use one of contact_roles, '
     'account, hybrid. Did you mean "account"?'),
    ("lead_status_names_no_stage",
     edited('"Working - Contacted" = "salesqualifiedlead"', '"Working - Contacted" = "sql"'),
     f'{FILE} [signals.lead_status] Working - Contacted: "sql" is not one of the [[stages]].'),
    ("lead_status_not_a_table",
     edited('[signals.lead_status]\n"Working - Contacted" = "salesqualifiedlead"\n', "").replace(
         'link_mode = "hybrid"', 'link_mode = "hybrid"\nlead_status = "Working - Contacted"'),
     f"{FILE} [signals.lead_status]: expected a table [signals.lead_status]."),
    ("recycle_to_no_stage", appended('[recycle.lost]\nlost_after_days = 90\nto = "leads"\n'),
     f'{FILE} [recycle.lost] to: "leads" is not one of the [[stages]]. Did you mean "lead"?'),
    ("recycle_without_to", appended("[recycle.lost]\nlost_after_days = 90\n"),
     f"{FILE} [recycle.lost] to: missing: name a stage by its HubSpot value."),
    ("recycle_to_misspelt", appended('[recycle.lost]\nlost_after_days = 90\ntoo = "lead"\n'),
     f'{FILE} [recycle.lost] too: unknown key. Did you mean "to"?'),
    ("recycle_without_condition", appended('[recycle.lost]\nto = "lead"\n'),
     f"{FILE} [recycle.lost]: give lead_status or lost_after_days: when does it apply?"),
    ("recycle_days_negative", appended('[recycle.lost]\nlost_after_days = -1\nto = "lead"\n'),
     f"{FILE} [recycle.lost] lost_after_days: expected a whole number of days, got -1."),
    ("recycle_days_text", appended('[recycle.lost]\nlost_after_days = "90"\nto = "lead"\n'),
     f"{FILE} [recycle.lost] lost_after_days: expected a whole number of days, got '90'."),
    ("recycle_days_boolean", appended('[recycle.lost]\nlost_after_days = true\nto = "lead"\n'),
     f"{FILE} [recycle.lost] lost_after_days: expected a whole number of days, got True."),
    ("recycle_days_fraction", appended('[recycle.lost]\nlost_after_days = 9.5\nto = "lead"\n'),
     f"{FILE} [recycle.lost] lost_after_days: expected a whole number of days, got 9.5."),
    ("recycle_status_not_a_list",
     appended('[recycle.dq]\nlead_status = "Closed - Not Converted"\nto = "lead"\n'),
     f"{FILE} [recycle.dq] lead_status: expected a list of Lead Status values."),
    ("recycle_status_empty", appended('[recycle.dq]\nlead_status = []\nto = "lead"\n'),
     f"{FILE} [recycle.dq] lead_status: expected at least one Lead Status value."),
    ("recycle_key_misspelt",
     appended('[recycle.dq]\nlead_status = ["Closed - Not Converted"]\nto = "lead"\n'
              "lost_after_day = 3\n"),
     f'{FILE} [recycle.dq] lost_after_day: unknown key. Did you mean "lost_after_days"?'),
    ("recycle_rule_not_a_table", appended("[recycle]\ndq = 3\n"),
     f"{FILE} [recycle.dq]: expected a table with to and lead_status or lost_after_days."),
    ("handoff_stage_no_stage", edited('stage = "marketingqualifiedlead"', 'stage = "mql"'),
     f'{FILE} [handoff] stage: "mql" is not one of the [[stages]].'),
    ("sla_zero", edited("sla_hours = 24", "sla_hours = 0"),
     f"{FILE} [handoff] sla_hours: expected a positive number of hours, got 0."),
    ("sla_text", edited("sla_hours = 24", 'sla_hours = "24h"'),
     f"{FILE} [handoff] sla_hours: expected a positive number of hours, got '24h'."),
    ("initial_status_blank",
     edited('initial_status = "Open - Not Contacted"', 'initial_status = " "'),
     f"{FILE} [handoff] initial_status: expected the Lead Status new Leads start with."),
    ("handoff_key_unknown", edited("sla_hours = 24", "sla_hours = 24\nsla_days = 1"),
     f"{FILE} [handoff] sla_days: unknown key."),
    ("handoff_not_a_table",
     'handoff = "mql"\n' + MINIMAL_STAGES + MINIMAL_TAIL,
     f"{FILE} [handoff]: expected a table [handoff]."),
]
CORPUS += [
    ("no_signals", DEFAULT[: DEFAULT.index("\n[signals]\n")]
     + DEFAULT[DEFAULT.index(LEAD_STATUS_LINE) + len(LEAD_STATUS_LINE):],
     f"{FILE} [signals]: missing: which stage does each signal imply?"),
    ("signals_section_misspelt", DEFAULT.replace("\n[signals]\n", "\n[signalz]\n").replace(
        "[signals.lead_status]", "[signalz.lead_status]"),
     f"{FILE}: unknown section [signalz]. Did you mean [signals]?"),
    ("sla_past_a_year", edited("sla_hours = 24", "sla_hours = 99999999999999999999"),
     f"{FILE} [handoff] sla_hours: expected at most 8760 hours (a year), "
     "got 99999999999999999999."),
    ("sla_nan", edited("sla_hours = 24", "sla_hours = nan"),
     f"{FILE} [handoff] sla_hours: expected at most 8760 hours (a year), got nan."),
    ("recycle_days_past_ten_years",
     appended('[recycle.lost]\nlost_after_days = 99999999999999999999\nto = "lead"\n'),
     f"{FILE} [recycle.lost] lost_after_days: expected at most 3650 days (ten years), "
     "got 99999999999999999999."),
    ("stage_value_with_nul", edited('hubspot = "subscriber"', 'hubspot = "sub\\u0000scriber"'),
     f'{FILE} [stages.1] hubspot: "sub\\u0000scriber" is not a HubSpot stage\'s internal value: '
     'a default stage\'s lowercase name such as "lead", or a custom stage\'s numeric id '
     "(Settings > Properties > Lifecycle Stage)."),
    ("stage_value_capitalised", edited('hubspot = "evangelist"', 'hubspot = "Evangelist"'),
     f'{FILE} [stages.7] hubspot: "Evangelist" is not a HubSpot stage\'s internal value: '
     'a default stage\'s lowercase name such as "lead", or a custom stage\'s numeric id '
     "(Settings > Properties > Lifecycle Stage)."),
    ("stage_label_with_tab", edited('salesforce = "MQL"', 'salesforce = "M\\tQL"'),
     f'{FILE} [stages.3] salesforce: "M\\tQL" holds a control character; write the '
     "Salesforce picklist value as plain text."),
    ("lead_status_with_newline",
     edited('"Working - Contacted" =', '"Working\\nContacted" ='),
     f'{FILE} [signals.lead_status]: "Working\\nContacted" holds a control character; write '
     "the Salesforce picklist value as plain text."),
    ("recycle_status_with_nul",
     appended('[recycle.dq]\nlead_status = ["Closed\\u0000"]\nto = "lead"\n'),
     f'{FILE} [recycle.dq] lead_status: "Closed\\u0000" holds a control character; write '
     "the Salesforce picklist value as plain text."),
    ("initial_status_with_newline",
     edited('initial_status = "Open - Not Contacted"', 'initial_status = "Open\\n"'),
     f'{FILE} [handoff] initial_status: "Open\\n" holds a control character; write the '
     "Salesforce picklist value as plain text."),
]


def check(tmp_path: Path, text: str | bytes) -> int:
    folder = tmp_path / "mappings"
    folder.mkdir(exist_ok=True)
    path = folder / "lifecycle.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text(f'[sync]\nmappings = "{folder}"\n' + CREDENTIALS, encoding="utf-8")
    return run(["check", "--config", str(config)])


def test_the_corpus_holds_thirty_malformed_lifecycle_files() -> None:
    names = [name for name, _, _ in CORPUS]
    assert len(names) >= 30 and len(set(names)) == len(names)


@pytest.mark.parametrize(("text", "line"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_a_malformed_lifecycle_file_is_answered_by_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: str
) -> None:
    assert check(tmp_path, text) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [line]
    assert captured.out == ""


def test_invalid_toml_names_the_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = edited('link_mode = "hybrid"', "link_mode = hybrid")
    line = text[: text.index("link_mode = hybrid")].count("\n") + 1
    assert check(tmp_path, text) == EXIT_USAGE
    (answer,) = capsys.readouterr().err.splitlines()
    assert answer.startswith(FILE)
    assert f"invalid TOML at line {line}, column 13" in answer


def test_a_file_that_is_not_utf8_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check(tmp_path, DEFAULT.encode("utf-8") + b'\n# caf\xe9\n') == EXIT_USAGE
    (answer,) = capsys.readouterr().err.splitlines()
    assert answer.startswith(f"{FILE}: not UTF-8 text (line ")


def test_every_problem_in_the_file_is_listed_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = edited('link_mode = "hybrid"', 'link_mode = "acount"').replace(
        "sla_hours = 24", "sla_hours = 0")
    assert check(tmp_path, text) == EXIT_USAGE
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        f"{FILE} [signals] link_mode", f"{FILE} [handoff] sla_hours"]


def test_a_custom_stage_is_named_by_its_numeric_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = edited('hubspot = "evangelist"', 'hubspot = "1048576"')
    assert check(tmp_path, text) == 0
    assert [s.hubspot for s in load_lifecycle(tmp_path / "mappings").stages][-1] == "1048576"


def test_the_shipped_file_and_its_recycle_examples_pass_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    examples = re.search(r"# \[recycle\.disqualified\].*?to = \"lead\"\n#\n# \[recycle\.lost\]"
                         r".*?to = \"lead\"\n", DEFAULT, re.S)
    assert examples is not None
    uncommented = "\n".join(line.removeprefix("# ").removeprefix("#")
                            for line in examples.group(0).splitlines())
    assert check(tmp_path, DEFAULT + "\n" + uncommented + "\n") == 0
    assert "OK" in capsys.readouterr().out
    settings = load_lifecycle(tmp_path / "mappings")
    assert [(r.name, r.to, r.lead_status, r.lost_after_days) for r in settings.recycle] == [
        ("disqualified", "lead", ("Closed - Not Converted",), None), ("lost", "lead", (), 90)]
    assert settings.link_mode == "hybrid" and settings.handoff_stage == "marketingqualifiedlead"
