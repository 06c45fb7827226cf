"""The config contract (ARCHITECTURE section 4): sources, precedence, paths, and errors that
name the file and key, every one at once."""

from __future__ import annotations

import os
import shutil
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.loopback import ThrowawayCA
from syncd.config import load_settings, parse_duration
from syncd.config_checks import cron_problem
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


def test_relative_paths_are_relative_to_the_config_folder(
    tmp_path: Path, loopback_ca: ThrowawayCA
) -> None:
    shutil.copy(loopback_ca.ca_path, tmp_path / "ca.pem")
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


# -- bad values: one line each, naming the key and the fix, never the secret -------------------

CREDENTIAL = "; credentials are printable ASCII without spaces. Check the value where it is set."
JWT = '[salesforce]\nauth = "jwt"\nconsumer_key = "3MVG9"\nusername = "ops@example.com"\n'
BAD_VALUES = {
    "token_line_break": (
        MINIMAL.replace("pat-na1-abc", "pat-na1\\nsecret"), {},
        "{config} [hubspot] access_token: contains a line break or other control character"
        + CREDENTIAL),
    "token_header_injection": (
        MINIMAL.replace("pat-na1-abc", "secret\\r\\nX-Evil: 1"), {},
        "{config} [hubspot] access_token: contains a line break or other control character"
        + CREDENTIAL),
    "token_not_ascii": (
        MINIMAL.replace("pat-na1-abc", "pät-secret-☃"), {},
        "{config} [hubspot] access_token: contains a character that is not ASCII" + CREDENTIAL),
    "token_with_a_space": (
        MINIMAL.replace("pat-na1-abc", "pat secret"), {},
        "{config} [hubspot] access_token: contains a space" + CREDENTIAL),
    "token_line_break_in_the_environment": (
        MINIMAL, {"SYNCD_SALESFORCE__ACCESS_TOKEN": "00D!secret\nx"},
        "environment SYNCD_SALESFORCE__ACCESS_TOKEN: contains a line break or other control "
        "character" + CREDENTIAL),
    "lookback_overflow": (
        MINIMAL + '[sync]\nlookback = "99999999999999999999h"\n', {},
        '{config} [sync] lookback: expected a duration such as "10m", "90s" or "2h", got '
        '"99999999999999999999h".'),
    "lookback_overflow_in_the_environment": (
        MINIMAL, {"SYNCD_SYNC__LOOKBACK": "8d"},
        'environment SYNCD_SYNC__LOOKBACK: must be at most 7d, got "8d"; to re-read older '
        "history once, run `syncd run --once --since ISO-DATE`."),
    "interval_overflow": (
        MINIMAL + '[sync]\ninterval = "99999999999999999999d"\n', {},
        '{config} [sync] interval: expected a duration such as "10m", "90s" or "2h", got '
        '"99999999999999999999d".'),
    "store_path_nul": (
        MINIMAL + '[store]\npath = "s\\u0000.db"\n', {},
        '{config} [store] path: "s\\u0000.db" contains a control character. Remove it from the '
        "path."),
    "ca_bundle_without_a_certificate": (
        MINIMAL.replace("[hubspot]", '[hubspot]\nca_bundle = "/etc/passwd"'), {},
        "{config} [hubspot] ca_bundle: /etc/passwd holds no readable PEM certificate "
        "(-----BEGIN CERTIFICATE-----). Name the CA certificate file to trust."),
    "ca_bundle_not_a_file": (
        MINIMAL.replace("[hubspot]", '[hubspot]\nca_bundle = "/dev/null"'), {},
        "{config} [hubspot] ca_bundle: /dev/null is not a regular file. Name the PEM file itself."),
    "private_key_not_a_key": (
        MINIMAL.split("[salesforce]")[0] + JWT + 'private_key_file = "/etc/passwd"\n', {},
        "{config} [salesforce] private_key_file: /etc/passwd holds no PEM private key "
        "(-----BEGIN PRIVATE KEY-----). Name the connected app's private key file."),
    "store_path_empty": (
        MINIMAL + '[store]\npath = ""\n', {},
        '{config} [store] path: empty. Give a file path such as "syncd.db", or leave it out '
        "for the default."),
    "store_path_empty_in_the_environment": (
        MINIMAL, {"SYNCD_STORE__PATH": ""},
        'environment SYNCD_STORE__PATH: empty. Give a file path such as "syncd.db", or leave '
        "it out for the default."),
    "store_path_list": (
        MINIMAL + '[store]\npath = ["a"]\n', {},
        '{config} [store] path: expected a file path such as "syncd.db", got a list.'),
    "store_path_number": (
        MINIMAL + "[store]\npath = 5\n", {},
        '{config} [store] path: expected a file path such as "syncd.db", got 5.'),
    "mappings_number": (
        MINIMAL + "[sync]\nmappings = 3\n", {},
        '{config} [sync] mappings: expected a folder path such as "mappings", got 3.'),
    "mappings_unset_variable": (
        MINIMAL + '[sync]\nmappings = "${NOPE}/maps"\n', {},
        "{config} [sync] mappings: environment variable NOPE is not set. Set it, or set "
        "SYNCD_SYNC__MAPPINGS."),
    "ca_bundle_unset_variable": (
        MINIMAL.replace("[hubspot]", '[hubspot]\nca_bundle = "${NOPE}/ca.pem"'), {},
        "{config} [hubspot] ca_bundle: environment variable NOPE is not set. Set it, or set "
        "SYNCD_HUBSPOT__CA_BUNDLE."),
    "value_with_a_line_break": (
        MINIMAL.replace("[salesforce]", '[salesforce]\napi_version = "59.0\\nx"'), {},
        '{config} [salesforce] api_version: expected a REST API version such as "59.0", '
        'got "59.0\\nx".'),
    "environment_without_a_section": (
        MINIMAL, {"SYNCD__PORT": "x"},
        "environment SYNCD__PORT: not a config key. Name it SYNCD_<SECTION>__<KEY>, "
        "e.g. SYNCD_SERVER__PORT."),
    "environment_without_a_key": (
        MINIMAL, {"SYNCD_SERVER__": "x"},
        "environment SYNCD_SERVER__: not a config key. Name it SYNCD_<SECTION>__<KEY>, "
        "e.g. SYNCD_SERVER__PORT."),
    "toml_nested_too_deeply": (
        "x = " + "[" * 5000 + "]" * 5000 + "\n", {},
        "{config}: not valid TOML: nested too deeply (lists or tables inside one another); "
        "flatten the value."),
    "lookback_of_5000_digits": (
        MINIMAL + f'[sync]\nlookback = "{"9" * 5000}m"\n', {},
        '{config} [sync] lookback: expected a duration such as "10m", "90s" or "2h", got '
        f'"{"9" * 40}…".'),
    "lookback_of_5000_digits_in_the_environment": (
        MINIMAL, {"SYNCD_SYNC__LOOKBACK": "9" * 5000 + "m"},
        'environment SYNCD_SYNC__LOOKBACK: expected a duration such as "10m", "90s" or "2h", '
        f'got "{"9" * 40}…".'),
    "base_url_port_zero": (
        MINIMAL.replace("[hubspot]", '[hubspot]\nbase_url = "https://127.0.0.1:0"'), {},
        "{config} [hubspot] base_url: expected an https:// URL with a port from 1 to 65535, "
        'got "https://127.0.0.1:0".'),
    "environment_name_with_a_line_break": (
        MINIMAL, {"SYNCD_HUB\nSPOT__X": "1"},
        "environment SYNCD_HUB\\nSPOT__X: no key [hub\\nspot] x in the config."),
    "secrets_folder_with_a_line_break": (
        '[salesforce]\naccess_token = "t0k3n"\n', {"SYNCD_SECRETS_DIR": "/no\nwhere"},
        "Missing hubspot.access_token. Looked in: env SYNCD_HUBSPOT__ACCESS_TOKEN, "
        "/no\\nwhere/syncd_hubspot_access_token, {config} [hubspot]."),
    "store_path_under_no_home_folder": (
        MINIMAL + '[store]\npath = "~no-such-user-here/syncd.db"\n', {},
        '{config} [store] path: "~no-such-user-here/syncd.db" starts with a ~ that names no '
        "home folder. Give the full path."),
    "schedule_that_never_fires": (
        MINIMAL + '[sync]\nschedule = "0 0 30 2 *"\n', {},
        '{config} [sync] schedule: "0 0 30 2 *" never fires: no date within a year matches its '
        'day and month fields. Give a schedule such as "*/5 * * * *".'),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_a_bad_value_is_one_line_naming_its_key_and_the_fix_never_the_secret(
    case: str, tmp_path: Path
) -> None:
    text, environ, expected = BAD_VALUES[case]
    path = write(tmp_path, text)
    problems = problems_of(path, {"SYNCD_SECRETS_DIR": "/nonexistent", **environ})
    assert problems == [expected.replace("{config}", str(path))]
    assert "\n" not in problems[0] and "secret" not in problems[0]


def test_credentials_are_trimmed_of_a_newline_and_a_byte_order_mark_whatever_their_source(
    tmp_path: Path,
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "syncd_hubspot_access_token").write_bytes("\ufeffpat-from-secret\r\n".encode())
    path = write(tmp_path, "[salesforce]\nclient_id = ' 3MVG9 '\n")
    settings = load_settings(path, environ={"SYNCD_SECRETS_DIR": str(secrets),
                                            "SYNCD_SALESFORCE__ACCESS_TOKEN": "00D!tok\n"})
    assert settings.secrets() == ["pat-from-secret", "00D!tok"]
    assert settings.salesforce.client_id == "3MVG9"


def test_a_config_saved_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(("\ufeff" + MINIMAL.lstrip()).encode())
    settings = load_settings(path, environ={"SYNCD_SECRETS_DIR": "/nonexistent"})
    assert settings.hubspot.access_token is not None


def test_an_rsa_private_key_file_loads(tmp_path: Path) -> None:
    from connectors.salesforce.emulator import SalesforceEmulator

    private, _ = SalesforceEmulator.make_jwt_key_pair()
    (tmp_path / "server.key").write_bytes(private)
    text = MINIMAL.split("[salesforce]")[0] + JWT + 'private_key_file = "server.key"\n'
    settings = load_settings(write(tmp_path, text), environ={"SYNCD_SECRETS_DIR": "/nonexistent"})
    assert settings.salesforce.private_key_file == tmp_path / "server.key"


def test_a_schedule_that_fires_only_on_leap_days_is_refused() -> None:
    problem = cron_problem("0 0 29 2 *", datetime(2025, 3, 1, tzinfo=UTC))
    assert problem is not None and "does not fire until 2028-02-29" in problem
    assert cron_problem("*/5 * * * *", datetime(2025, 3, 1, tzinfo=UTC)) is None


def test_a_password_keeps_its_spaces_and_letters_and_loses_only_a_trailing_newline(
    tmp_path: Path,
) -> None:
    """A password goes in the OAuth form body, not a header: a space or an accent is fine."""
    path = write(tmp_path, '[hubspot]\naccess_token = "pat-na1-abc"\n[salesforce]\n'
                 'auth = "password"\nclient_id = "3MVG9"\nclient_secret = "s3cr3t"\n'
                 'username = "ops@example.com"\n')
    settings = load_settings(path, environ={"SYNCD_SECRETS_DIR": "/nonexistent",
                                            "SYNCD_SALESFORCE__PASSWORD": " Grüße aus Köln \n"})
    assert settings.salesforce.password is not None
    assert settings.salesforce.password.get_secret_value() == " Grüße aus Köln "
    bad = write(tmp_path, path.read_text() + 'password = "two\\nlines"\n', "bad.toml")
    (line,) = problems_of(bad)
    assert line.endswith("[salesforce] password: contains a line break or other control "
                         "character. Check the value where it is set.")
    assert "two" not in line


def test_a_password_from_a_secrets_file_keeps_its_spaces_other_secrets_do_not(
    tmp_path: Path,
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "syncd_salesforce_password").write_bytes("\ufeff  pass word  \r\n".encode())
    (secrets / "syncd_salesforce_client_secret").write_text(" s3cr3t \n")
    path = write(tmp_path, '[hubspot]\naccess_token = "pat-na1-abc"\n[salesforce]\n'
                 'auth = "password"\nclient_id = "3MVG9"\nusername = "ops@example.com"\n')
    settings = load_settings(path, environ={"SYNCD_SECRETS_DIR": str(secrets)})
    assert settings.salesforce.password is not None
    assert settings.salesforce.password.get_secret_value() == "  pass word  "
    assert settings.salesforce.client_secret is not None
    assert settings.salesforce.client_secret.get_secret_value() == "s3cr3t"


def test_a_secrets_folder_that_cannot_be_entered_is_one_line_naming_it(tmp_path: Path) -> None:
    # As root no folder is shut, so a name too long to open stands in for "Permission denied".
    folder = tmp_path / ("s" * 256)
    path = write(tmp_path, MINIMAL)
    assert problems_of(path, {"SYNCD_SECRETS_DIR": str(folder)}) == [
        f"secrets folder {folder} cannot be read (File name too long); let the user syncd runs "
        "as read it, or set SYNCD_SECRETS_DIR."
    ]


def test_a_config_path_with_a_line_break_is_shown_on_one_line(tmp_path: Path) -> None:
    (missing,) = problems_of(tmp_path / "no\nsuch.toml")
    assert missing == (f"{tmp_path}/no\\nsuch.toml: file not found. Copy config.example.toml "
                       "there, or pass --config PATH.")
    path = write(tmp_path, MINIMAL + "[server]\nprot = 1\n", "con\nfig.toml")
    assert problems_of(path) == [f'{tmp_path}/con\\nfig.toml [server] prot: unknown key. '
                                 'Did you mean "port"?']


@pytest.mark.parametrize("kind", ["fifo", "device", "symlink_to_a_device"])
def test_a_config_that_is_not_a_regular_file_is_refused_before_it_is_read(
    kind: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    if kind == "fifo":
        os.mkfifo(path)  # reading it would wait for a writer forever
    elif kind == "device":
        path = Path("/dev/zero")  # reading it would never end
    else:
        path.symlink_to("/dev/zero")
    assert problems_of(path) == [f"{path} is not a regular file; pass the config file itself."]


def test_a_config_past_1_mib_is_refused_unread(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "#" * (1 << 20) + "\n")
    assert problems_of(path) == [
        f"{path}: larger than 1 MiB, so not a config file; pass the config file itself."
    ]


def test_a_path_key_starting_with_a_tilde_is_under_the_home_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = write(tmp_path, MINIMAL + '[store]\npath = "~/syncd.db"\n')
    settings = load_settings(path, environ={"SYNCD_SECRETS_DIR": "/nonexistent",
                                            "SYNCD_SYNC__MAPPINGS": "~"})
    assert settings.store.path == tmp_path / "home" / "syncd.db"
    assert settings.sync.mappings == tmp_path / "home"
