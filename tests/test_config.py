"""The config contract (ARCHITECTURE section 4): sources, precedence, paths, and errors that
name the file and key, every one at once."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from syncd.config import load_settings, parse_duration
from syncd.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
MINIMAL = """
[hubspot]
access_token = "pat-na1-abc"
[salesforce]
access_token = "00Dxx!AQ.token"
"""


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=environ or {"SYNCD_SECRETS_DIR": "/nonexistent"})
    return caught.value.problems


def test_example_config_loads_every_key_with_its_documented_default(tmp_path: Path) -> None:
    example = REPO / "config.example.toml"
    settings = load_settings(
        example,
        environ={"HUBSPOT_ACCESS_TOKEN": "pat-x", "SALESFORCE_ACCESS_TOKEN": "00D!tok",
                 "SYNCD_SECRETS_DIR": str(tmp_path)},
    )
    raw = tomllib.loads(example.read_text())
    for section, keys in raw.items():
        model = getattr(settings, section)
        for key in keys:
            assert key in type(model).model_fields, f"[{section}] {key} is not loaded"
    assert settings.hubspot.requests_per_10s == 100
    assert settings.salesforce.bulk_threshold == 10000
    assert settings.sync.lookback_seconds == 600
    assert settings.store.path == REPO / "syncd.db"
    assert settings.sync.mappings is None


def test_env_interpolation_fills_strings(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('"pat-na1-abc"', '"${MY_TOKEN}"'))
    settings = load_settings(path, environ={"MY_TOKEN": "pat-from-env"})
    assert settings.hubspot.access_token is not None
    assert settings.hubspot.access_token.get_secret_value() == "pat-from-env"


def test_section_key_environment_variables_override_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    settings = load_settings(
        path, environ={"SYNCD_HUBSPOT__REQUESTS_PER_10S": "42", "SYNCD_STORE__PATH": "/tmp/x.db"}
    )
    assert settings.hubspot.requests_per_10s == 42
    assert settings.store.path == Path("/tmp/x.db")


def test_secrets_files_supply_credentials(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "syncd_hubspot_access_token").write_text("pat-from-secret\n")
    path = write(tmp_path, '[salesforce]\naccess_token = "t0k3n"\n')
    settings = load_settings(path, environ={"SYNCD_SECRETS_DIR": str(secrets)})
    assert settings.hubspot.access_token is not None
    assert settings.hubspot.access_token.get_secret_value() == "pat-from-secret"


def test_an_override_satisfies_an_unset_interpolation(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('"pat-na1-abc"', '"${UNSET_TOKEN}"'))
    settings = load_settings(path, environ={"SYNCD_HUBSPOT__ACCESS_TOKEN": "pat-env"})
    assert settings.hubspot.access_token is not None
    assert settings.hubspot.access_token.get_secret_value() == "pat-env"


def test_relative_paths_are_relative_to_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    path = write(tmp_path, MINIMAL + '[store]\npath = "data/s.db"\n'.replace("[store]", "\n[store]")
                 + '\n', "config.toml")
    text = path.read_text().replace('[hubspot]\n', '[hubspot]\nca_bundle = "ca.pem"\n')
    path.write_text(text)
    settings = load_settings(path, environ={})
    assert settings.store.path == tmp_path / "data/s.db"
    assert settings.hubspot.ca_bundle == tmp_path / "ca.pem"


def test_every_problem_is_reported_at_once_with_file_section_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, """
[hubspot]
requests_per_10s = "abc"
daily_budget = 3
[salesforc]
x = 1
[sync]
lookback = "5 mins"
[salesforce]
auth = "jwtt"
""")
    problems = problems_of(path)
    assert len(problems) == 5
    text = "\n".join(problems)
    assert f"{path}: unknown section [salesforc]. Did you mean \"salesforce\"?" in text
    assert f"{path} [hubspot] requests_per_10s:" in text
    assert f"{path} [hubspot] daily_budget:" in text
    assert f"{path} [sync] lookback:" in text
    assert f"{path} [salesforce] auth:" in text


def test_unknown_key_suggests_the_likely_one(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "[server]\nprot = 1\n")
    assert problems_of(path) == [f'{path} [server] prot: unknown key. Did you mean "port"?']


def test_missing_credentials_say_where_syncd_looked(tmp_path: Path) -> None:
    path = write(tmp_path, "[salesforce]\nauth = \"jwt\"\nusername = \"u@x\"\n")
    problems = problems_of(path)
    assert problems[0] == (
        "Missing hubspot.access_token. Looked in: env SYNCD_HUBSPOT__ACCESS_TOKEN, "
        f"/nonexistent/syncd_hubspot_access_token, {path} [hubspot]."
    )
    assert any(p.startswith("Missing salesforce.consumer_key.") for p in problems)
    assert any(p.startswith("Missing salesforce.private_key_file.") for p in problems)
    assert not any("username" in p for p in problems)


def test_toml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "[hubspot]\naccess_token = = 'x'\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: not valid TOML:") and "line 2" in problem


def test_missing_file_names_the_fix(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path / "nope.toml")
    assert "file not found" in problem and "config.example.toml" in problem


def test_a_secret_never_appears_in_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, '[hubspot]\naccess_token = ["s3cr3t-x"]\n'
                 '[salesforce]\nclient_secret = ["s3cr3t-y"]\naccess_token = "t"\n')
    problems = problems_of(path)
    assert len(problems) == 2
    assert not any("s3cr3t" in p for p in problems)


def test_schedule_and_interval_are_exclusive(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '[sync]\nschedule = "*/5 * * * *"\ninterval = "5m"\n')
    assert problems_of(path) == [f"{path} [sync]: give schedule (cron) or interval, not both."]


def test_missing_ca_bundle_file_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("[salesforce]", '[salesforce]\nca_bundle = "nope.pem"'))
    missing = tmp_path / "nope.pem"
    assert problems_of(path) == [f"{path} [salesforce] ca_bundle: {missing} does not exist."]


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("10m", 600), ("2h", 7200), ("1d", 86400)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


def test_every_example_key_is_documented_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    raw = tomllib.loads((REPO / "config.example.toml").read_text(encoding="utf-8"))
    missing = [f"{section}.{key}" for section, keys in raw.items() for key in keys
               if f"`{section}.{key}`" not in readme]
    assert missing == []


def test_every_settings_key_is_in_the_example() -> None:
    from syncd.config import Settings

    raw = tomllib.loads((REPO / "config.example.toml").read_text(encoding="utf-8"))
    for section, model in Settings.model_fields.items():
        if section == "source":
            continue
        keys = set(model.annotation.model_fields)  # type: ignore[union-attr]
        assert keys - {"interval"} <= set(raw.get(section, {})), section
