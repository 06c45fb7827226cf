"""`syncd check` through the real CLI (in-process): every malformed mapping file answered by one
line naming file, section and key, exit 2 and nothing written; `--online` against the emulators
reports the missing HubSpot `syncd_*` properties and `--fix` creates them."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.hubspot.emulator import HubSpotEmulator, HubSpotLimits
from connectors.loopback import ThrowawayCA
from connectors.salesforce.emulator import SalesforceEmulator
from syncd.cli import run
from syncd.errors import EXIT_OK, EXIT_USAGE
from syncd.mapping_files import DEFAULTS_FOLDER

CORPUS = Path(__file__).resolve().parent / "mapping_corpus"
CASES = sorted(CORPUS.glob("*.toml"))
SALESFORCE_TOKEN = "00D000000000001!AQcheck.token"

# What a pass needs, and so `syncd check` asks for (the tokens are never used offline).
CREDENTIALS = (
    '[hubspot]\naccess_token = "pat-na1-check"\n'
    '[salesforce]\naccess_token = "00D000000000001!AQcheck"\n'
)


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[case.stem for case in CASES])
def test_syncd_check_answers_a_malformed_mapping_file_with_one_line_and_exit_2(
    case: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name, entity = case.stem.rsplit(".", 1)
    expected = case.with_name(f"{name}.expected").read_text(encoding="utf-8").strip()
    folder = tmp_path / "mappings"
    folder.mkdir()
    shutil.copy(case, folder / f"{entity}.toml")
    config = tmp_path / "config.toml"
    config.write_text(f'[store]\npath = "syncd.db"\n[sync]\nmappings = "{folder}"\n'
                      + CREDENTIALS,
                      encoding="utf-8")
    before = files_under(tmp_path)
    assert run(["check", "--config", str(config)]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.err == expected + "\n"
    assert captured.out == ""
    assert files_under(tmp_path) == before  # no store, no lock, nothing rewritten
    section_and_key = expected.split(":", 1)[0]
    assert section_and_key.startswith(f"mappings/{entity}.toml")


def test_the_cli_corpus_covers_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30


def test_syncd_check_passes_the_shipped_mappings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[store]\npath = "syncd.db"\n' + CREDENTIALS, encoding="utf-8")
    assert run(["check", "--config", str(config)]) == EXIT_OK
    assert "Mappings (the installed defaults): OK." in capsys.readouterr().out
    assert not (tmp_path / "syncd.db").exists()


# -- online ------------------------------------------------------------------------------------


@pytest.fixture
def bare_crms(tmp_path: Path, loopback_ca: ThrowawayCA) -> Iterator[tuple[Any, Path]]:
    """Both emulators as a fresh install finds them: no syncd_* HubSpot properties yet (the
    Salesforce org ships Syncd_Id__c, which an admin creates), and a config pointing at them."""
    hubspot = HubSpotEmulator(ca=loopback_ca, limits=HubSpotLimits.unlimited()).start()
    salesforce = SalesforceEmulator(ca=loopback_ca, access_token=SALESFORCE_TOKEN).start()
    config = tmp_path / "config.toml"
    config.write_text(f"""
[store]
path = "syncd.db"
[hubspot]
base_url = "{hubspot.url}"
access_token = "{hubspot.access_token}"
ca_bundle = "{loopback_ca.ca_path}"
[salesforce]
instance_url = "{salesforce.url}"
access_token = "{SALESFORCE_TOKEN}"
ca_bundle = "{loopback_ca.ca_path}"
""", encoding="utf-8")
    try:
        yield hubspot, config
    finally:
        hubspot.stop()
        salesforce.stop()


SYNCD_PROPERTIES = [("contacts", "syncd_id"), ("companies", "syncd_id"), ("deals", "syncd_id"),
                    ("contacts", "syncd_attributed_revenue"),
                    ("deals", "syncd_first_touch_campaign"),
                    ("deals", "syncd_last_touch_campaign")]


def test_check_online_reports_the_missing_syncd_properties(
    bare_crms: tuple[Any, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    hubspot, config = bare_crms
    assert run(["check", "--online", "--config", str(config)]) == EXIT_USAGE
    err = capsys.readouterr().err.splitlines()
    for obj, name in SYNCD_PROPERTIES:
        assert any(f'HubSpot {obj} property "{name}" is missing' in line for line in err), name
    assert err[-1] == "Run `syncd check --online --fix` to create the missing HubSpot properties."
    assert all(name not in hubspot.portal.table(obj).schema for obj, name in SYNCD_PROPERTIES)
    assert hubspot.calls("POST ") == 0  # reading schemas writes nothing


def test_check_online_fix_creates_them_and_a_second_check_passes(
    bare_crms: tuple[Any, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    hubspot, config = bare_crms
    assert run(["check", "--online", "--fix", "--config", str(config)]) == EXIT_OK
    out = capsys.readouterr().out
    for obj, name in SYNCD_PROPERTIES:
        assert f"Created HubSpot property {obj}.{name}." in out
        assert name in hubspot.portal.table(obj).schema
    for obj in ("contacts", "companies", "deals"):
        assert hubspot.portal.table(obj).schema["syncd_id"].has_unique_value
    assert run(["check", "--online", "--config", str(config)]) == EXIT_OK
    assert "Online: the mappings match both CRMs' schemas." in capsys.readouterr().out


def test_check_fix_without_online_is_bad_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[store]\npath = "syncd.db"\n' + CREDENTIALS, encoding="utf-8")
    assert run(["check", "--fix", "--config", str(config)]) == EXIT_USAGE
    assert "--fix needs --online" in capsys.readouterr().err


def test_syncd_check_asks_for_the_credentials_a_pass_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config `check` passes must run: before, `check` said OK and `run` exited 2."""
    for name in ("SYNCD_HUBSPOT__ACCESS_TOKEN", "SYNCD_SALESFORCE__ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SYNCD_SECRETS_DIR", str(tmp_path / "no-secrets"))
    config = tmp_path / "config.toml"
    config.write_text('[store]\npath = "syncd.db"\n[salesforce]\naccess_token = "t0k3n"\n',
                      encoding="utf-8")
    assert run(["check", "--config", str(config)]) == EXIT_USAGE
    assert capsys.readouterr().err.startswith("Missing hubspot.access_token. Looked in: env ")


def test_check_online_reports_lifecycle_stages_a_crm_would_refuse(
    bare_crms: tuple[Any, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stage value missing from HubSpot's lifecyclestage options or from the restricted
    Lifecycle_Stage__c picklist: before, check said the schemas matched and every push of that
    stage came back refused."""
    _, config = bare_crms
    assert run(["check", "--online", "--fix", "--config", str(config)]) == EXIT_OK
    folder = tmp_path / "mappings"
    folder.mkdir()
    shipped = (DEFAULTS_FOLDER / "lifecycle.toml").read_text(encoding="utf-8")
    stages = shipped.splitlines().count("[[stages]]")
    (folder / "lifecycle.toml").write_text(
        shipped.replace("\n[signals]\n", '\n[[stages]]\nhubspot = "1007284532"\n'
                        'salesforce = "Advocate"\n\n[signals]\n', 1), encoding="utf-8")
    with config.open("a", encoding="utf-8") as more:
        more.write(f'[sync]\nmappings = "{folder}"\n')
    capsys.readouterr()

    assert run(["check", "--online", "--config", str(config)]) == EXIT_USAGE

    where = f"mappings/lifecycle.toml [stages.{stages + 1}]"
    assert capsys.readouterr().err.splitlines() == [
        f'{where} hubspot: HubSpot contact property "lifecyclestage" has no option '
        '"1007284532". Add the stage in HubSpot (Settings > Objects > Contacts > Lifecycle '
        "stage), or give its internal value.",
        *(f'{where} salesforce: Salesforce {obj}.Lifecycle_Stage__c has no picklist value '
          '"Advocate". Add it in Setup (Object Manager > the object > Lifecycle Stage), or name '
          "an existing value." for obj in ("Lead", "Contact")),
    ]
