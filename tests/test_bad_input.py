"""Bad input through the real CLI, in-process (issue 8, part 4): malformed configs, broken
mapping folders and mistyped command lines. Each is answered with exit 2 and one line per
problem on stderr, naming the file and key (or the option), never a traceback, and the store
is left as it was: absent when there was none, byte-identical when there was one.

The corpus lives in `tests/bad_input/`: `config/NAME.toml` with the lines it must produce in
`NAME.expected` (and, for overrides, the environment in `NAME.env`); `mappings/NAME.FILE.toml`
is dropped into a mappings folder as `FILE.toml`. In expected lines `{config}` stands for the
config file's path and `{folder}` for its folder. The mapping corpus of `tests/mapping_corpus/`
goes through `run --once` and `plan` here as well."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from syncd.cli import cli, run
from syncd.errors import EXIT_USAGE
from syncd.store import Store

HERE = Path(__file__).resolve().parent
CONFIGS = sorted((HERE / "bad_input" / "config").glob("*.toml"))
MAPPING_CASES = sorted((HERE / "bad_input" / "mappings").glob("*.toml"))
MAPPING_CORPUS = sorted((HERE / "mapping_corpus").glob("*.toml"))
GOOD_CONFIG = """[store]
path = "syncd.db"

[hubspot]
base_url = "https://127.0.0.1:9"
access_token = "pat-na1-bad-input"

[salesforce]
instance_url = "https://127.0.0.1:9"
access_token = "00D000000000001!AQbad.input"
"""


@dataclass
class Answer:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.err.splitlines()


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No SYNCD_* variable of the machine leaks into a case, and no real /run/secrets."""
    for name in list(os.environ):
        if name.startswith("SYNCD_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SYNCD_SECRETS_DIR", str(tmp_path / "secrets"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def store_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real, migrated, empty store file, for cases that start with one."""
    path = tmp_path_factory.mktemp("store") / "syncd.db"
    Store(path).close()
    return path.read_bytes()


def files_under(folder: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
        for p in sorted(folder.rglob("*"))
    }


def answer(args: Sequence[str], capsys: pytest.CaptureFixture[str]) -> Answer:
    code = run(list(args))
    captured = capsys.readouterr()
    return Answer(code, captured.out, captured.err)


def assert_refused(
    done: Answer, before: dict[str, bytes | None], folder: Path, lines: int = 1
) -> None:
    """Exit 2, `lines` lines on stderr and nothing else, no traceback, no file touched."""
    assert done.code == EXIT_USAGE, done.err
    assert len(done.lines) == lines, done.err
    assert done.err.endswith("\n") and "Traceback" not in done.err + done.out
    assert done.out == ""
    assert files_under(folder) == before


def filled(text: str, config: Path) -> str:
    return text.replace("{config}", str(config)).replace("{folder}", str(config.parent))


# -- configs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_a_malformed_config_is_answered_by_its_lines_and_exit_2(
    case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "config.toml"
    shutil.copyfile(case, config)
    environment = case.with_suffix(".env")
    if environment.exists():
        for line in environment.read_text(encoding="utf-8").splitlines():
            name, _, value = line.partition("=")
            monkeypatch.setenv(name, filled(value, config))
    expected = filled(case.with_suffix(".expected").read_text(encoding="utf-8"), config)
    before = files_under(tmp_path)
    done = answer(["run", "--once", "--config", str(config)], capsys)
    assert done.err == expected
    assert_refused(done, before, tmp_path, lines=len(expected.splitlines()))
    assert not (tmp_path / "syncd.db").exists()


def test_the_config_corpus_names_the_file_in_every_line() -> None:
    for case in CONFIGS:
        for line in case.with_suffix(".expected").read_text(encoding="utf-8").splitlines():
            assert "{config}" in line or line.startswith("environment SYNCD_"), (case.stem, line)


def test_a_config_that_is_a_folder_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "config.toml"
    folder.mkdir()
    before = files_under(tmp_path)
    done = answer(["run", "--once", "--config", str(folder)], capsys)
    assert done.err == f"{folder}: cannot be read ([Errno 21] Is a directory: '{folder}').\n"
    assert_refused(done, before, tmp_path)


def test_a_config_that_does_not_exist_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere" / "config.toml"
    before = files_under(tmp_path)
    done = answer(["plan", "--config", str(missing)], capsys)
    assert done.err == (
        f"{missing}: file not found. Copy config.example.toml there, or pass --config PATH.\n"
    )
    assert_refused(done, before, tmp_path)


def test_an_empty_config_option_is_refused_rather_than_read_as_the_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config.toml").write_text(GOOD_CONFIG, encoding="utf-8")
    before = files_under(tmp_path)
    done = answer(["run", "--once", "--config", ""], capsys)
    assert done.err == "--config: empty path. Pass the file, e.g. --config config.toml.\n"
    assert_refused(done, before, tmp_path)


def write_secret(tmp_path: Path, name: str, content: bytes) -> Path:
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / name).write_bytes(content)
    return secrets / name


def test_a_secrets_file_that_is_not_text_is_named_and_its_bytes_are_not_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(GOOD_CONFIG, encoding="utf-8")
    secret = write_secret(tmp_path, "syncd_hubspot_access_token", b"pat-\xff\xfe-secret")
    before = files_under(tmp_path)
    done = answer(["run", "--once", "--config", str(config)], capsys)
    assert done.err == f"secrets file {secret}: cannot be read (not UTF-8 text).\n"
    assert_refused(done, before, tmp_path)


def test_an_empty_secrets_file_counts_as_a_missing_credential(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(GOOD_CONFIG, encoding="utf-8")
    secret = write_secret(tmp_path, "syncd_salesforce_access_token", b"\n")
    before = files_under(tmp_path)
    done = answer(["plan", "--config", str(config)], capsys)
    assert done.err == (
        "Missing salesforce.access_token. Looked in: env SYNCD_SALESFORCE__ACCESS_TOKEN, "
        f"{secret}, {config} [salesforce].\n"
    )
    assert_refused(done, before, tmp_path)


def test_a_bad_value_in_a_secrets_file_is_reported_at_that_file_not_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(GOOD_CONFIG, encoding="utf-8")
    secret = write_secret(tmp_path, "syncd_hubspot_base_url", b"http://api.hubapi.com\n")
    before = files_under(tmp_path)
    done = answer(["run", "--once", "--config", str(config)], capsys)
    assert done.err == (
        f'secrets file {secret}: expected an https:// URL, got "http://api.hubapi.com".\n'
    )
    assert_refused(done, before, tmp_path)


# -- mapping folders ----------------------------------------------------------------------------


@dataclass
class MappingFolder:
    root: Path
    config: Path
    folder: Path

    def holding(self, case: Path) -> None:
        """The case's file in the folder under the name syncd reads (`NAME.FILE.toml`)."""
        target = self.folder / (case.name.split(".", 1)[1])
        shutil.copyfile(case, target)


@pytest.fixture
def mapping_folder(tmp_path: Path, store_bytes: bytes) -> Iterator[MappingFolder]:
    """A config whose mappings folder a case fills, next to an existing store that must come
    out byte-identical."""
    folder = tmp_path / "mappings"
    folder.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(GOOD_CONFIG + '\n[sync]\nmappings = "mappings"\n', encoding="utf-8")
    (tmp_path / "syncd.db").write_bytes(store_bytes)
    yield MappingFolder(tmp_path, config, folder)


def expected_lines(case: Path) -> str:
    name = case.name.split(".", 1)[0]
    return case.with_name(f"{name}.expected").read_text(encoding="utf-8").strip() + "\n"


@pytest.mark.parametrize("command", [["run", "--once"], ["plan"]], ids=["run-once", "plan"])
@pytest.mark.parametrize("case", MAPPING_CORPUS, ids=[c.name.split(".")[0] for c in MAPPING_CORPUS])
def test_a_broken_mapping_file_stops_a_pass_before_it_reads_anything(
    case: Path, command: list[str], mapping_folder: MappingFolder,
    capsys: pytest.CaptureFixture[str],
) -> None:
    mapping_folder.holding(case)
    before = files_under(mapping_folder.root)
    done = answer([*command, "--config", str(mapping_folder.config)], capsys)
    assert done.err == expected_lines(case)
    assert_refused(done, before, mapping_folder.root)


@pytest.mark.parametrize("command", [["run", "--once"], ["plan"]], ids=["run-once", "plan"])
@pytest.mark.parametrize("case", MAPPING_CASES, ids=[c.name.split(".")[0] for c in MAPPING_CASES])
def test_a_broken_account_opportunity_or_lifecycle_file_is_answered_by_its_lines(
    case: Path, command: list[str], mapping_folder: MappingFolder,
    capsys: pytest.CaptureFixture[str],
) -> None:
    mapping_folder.holding(case)
    expected = expected_lines(case)
    before = files_under(mapping_folder.root)
    done = answer([*command, "--config", str(mapping_folder.config)], capsys)
    assert done.err == expected
    assert_refused(done, before, mapping_folder.root, lines=len(expected.splitlines()))


def test_every_broken_file_in_a_folder_is_reported_at_once_one_line_each(
    mapping_folder: MappingFolder, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("rule_unknown.person.toml", "values_not_a_table.opportunity.toml"):
        mapping_folder.holding(HERE / "mapping_corpus" / name)
    mapping_folder.holding(HERE / "bad_input/mappings/stages_header_unclosed.lifecycle.toml")
    before = files_under(mapping_folder.root)
    done = answer(["run", "--once", "--config", str(mapping_folder.config)], capsys)
    assert [line.split(" ", 1)[0].split(":")[0] for line in done.lines] == [
        "mappings/person.toml", "mappings/opportunity.toml", "mappings/lifecycle.toml"
    ]
    assert_refused(done, before, mapping_folder.root, lines=3)


def test_a_mapping_file_that_is_a_folder_is_one_line(
    mapping_folder: MappingFolder, capsys: pytest.CaptureFixture[str]
) -> None:
    (mapping_folder.folder / "person.toml").mkdir()
    before = files_under(mapping_folder.root)
    done = answer(["run", "--once", "--config", str(mapping_folder.config)], capsys)
    assert done.err == "mappings/person.toml: cannot be read: Is a directory.\n"
    assert_refused(done, before, mapping_folder.root)


def test_a_misnamed_mapping_file_is_one_line_with_the_likely_name(
    mapping_folder: MappingFolder, capsys: pytest.CaptureFixture[str]
) -> None:
    (mapping_folder.folder / "Person.toml").write_text("", encoding="utf-8")
    before = files_under(mapping_folder.root)
    done = answer(["plan", "--config", str(mapping_folder.config)], capsys)
    assert done.lines[0].startswith("mappings/Person.toml: not a file syncd reads")
    assert done.lines[0].endswith('Did you mean "person.toml"?')
    assert_refused(done, before, mapping_folder.root)


def test_the_corpus_holds_at_least_sixty_cases() -> None:
    own = len(CONFIGS) + len(MAPPING_CASES) + len(CLI_CASES)
    assert own >= 60
    assert own + len(MAPPING_CORPUS) >= 100


# -- command lines ------------------------------------------------------------------------------

# (case, argv after `syncd` with {config} for a good config, the one line stderr must hold)
CLI_CASES: list[tuple[str, list[str], str]] = [
    ("no_command", [], "syncd: give a command: {commands}. See `syncd --help`."),
    ("unknown_command", ["frobnicate"],
     "syncd: No such command 'frobnicate'. See `syncd --help`."),
    ("unknown_option", ["run", "--onse", "--config", "{config}"],
     "syncd run: No such option '--onse'. (Did you mean one of: '--once', '--since'?) "
     "See `syncd run --help`."),
    ("unknown_global_option", ["--verbose"],
     "syncd: No such option '--verbose'. Did you mean '--version'? See `syncd --help`."),
    ("since_not_a_date", ["run", "--once", "--since", "yesterday", "--config", "{config}"],
     "syncd run: Invalid value for '--since': \"yesterday\" is not an ISO date or date-time such "
     "as 2026-01-31 or 2026-01-31T08:00:00Z. See `syncd run --help`."),
    ("since_month_13", ["run", "--once", "--since", "2026-13-01", "--config", "{config}"],
     "syncd run: Invalid value for '--since': \"2026-13-01\" is not an ISO date or date-time "
     "such as 2026-01-31 or 2026-01-31T08:00:00Z. See `syncd run --help`."),
    ("since_before_year_one_in_utc", ["run", "--once", "--since", "0001-01-01T00:00:00+14:00",
                                      "--config", "{config}"],
     "syncd run: Invalid value for '--since': \"0001-01-01T00:00:00+14:00\" is not an ISO date "
     "or date-time such as 2026-01-31 or 2026-01-31T08:00:00Z. See `syncd run --help`."),
    ("since_empty", ["run", "--once", "--since", "", "--config", "{config}"],
     "syncd run: Invalid value for '--since': \"\" is not an ISO date or date-time such as "
     "2026-01-31 or 2026-01-31T08:00:00Z. See `syncd run --help`."),
    ("since_with_full", ["run", "--once", "--since", "2026-01-01", "--full", "--config",
                         "{config}"],
     "syncd run: give --since or --full, not both."),
    ("since_without_once", ["run", "--since", "2026-01-01", "--config", "{config}"],
     "syncd run: --since, --full and --dry-run go with --once."),
    ("dry_run_without_once", ["run", "--dry-run", "--config", "{config}"],
     "syncd run: --since, --full and --dry-run go with --once."),
    ("run_extra_argument", ["run", "--once", "backfill", "--config", "{config}"],
     "syncd run: Got unexpected extra argument (backfill). See `syncd run --help`."),
    ("plan_takes_no_dry_run", ["plan", "--dry-run", "--config", "{config}"],
     "syncd plan: No such option '--dry-run'. See `syncd plan --help`."),
    ("scale_too_small", ["sandbox", "--scale", "5"],
     "syncd sandbox: Invalid value for '--scale': 5 is not in the range 100<=x<=1000000. "
     "See `syncd sandbox --help`."),
    ("sandbox_config_out_without_a_name", ["sandbox", "--config-out", ""],
     'syncd sandbox: --config-out needs a file name, such as "sandbox.toml".'),
    ("scale_not_a_number", ["demo", "--scale", "big"],
     "syncd demo: Invalid value for '--scale': 'big' is not a valid integer range. "
     "See `syncd demo --help`."),
    ("errors_retry_id_not_a_number", ["errors", "retry", "--id", "x", "--config", "{config}"],
     "syncd errors: Invalid value for '--id': 'x' is not a valid integer. "
     "See `syncd errors --help`."),
    ("errors_unknown_action", ["errors", "purge", "--config", "{config}"],
     "syncd errors: Invalid value for '[list|retry|export]': 'purge' is not one of 'list', "
     "'retry', 'export'. See `syncd errors --help`."),
    ("errors_export_to_a_folder", ["errors", "export", "--out", "{folder}", "--config",
                                   "{config}"],
     "syncd errors: Invalid value for '--out': File '{folder}' is a directory. "
     "See `syncd errors --help`."),
    ("log_level_unknown", ["run", "--once", "--log-level", "loud", "--config", "{config}"],
     "syncd run: Invalid value for '--log-level': 'loud' is not one of 'debug', 'info', "
     "'warning', 'error'. See `syncd run --help`."),
    ("config_without_a_path", ["run", "--once", "--config"],
     "syncd run: Option '--config' requires an argument. See `syncd run --help`."),
    ("fix_without_online", ["check", "--fix", "--config", "{config}"],
     "syncd check: --fix needs --online."),
    ("report_format_pdf", ["report", "funnel", "--format", "pdf", "--config", "{config}"],
     "syncd report: Invalid value for '--format': 'pdf' is not one of 'table', 'csv', 'html'. "
     "See `syncd report --help`."),
    ("report_out_under_a_file", ["report", "funnel", "--out", "{config}/f.csv", "--config",
                                 "{config}"],
     "{config}/f.csv: cannot be written: {config} is a file, not a folder."),
    ("report_out_without_a_name", ["report", "funnel", "--out", "", "--config", "{config}"],
     '".": give a file name to write, such as report.html.'),
    ("errors_list_with_out", ["errors", "list", "--out", "{folder}/x.csv", "--config",
                              "{config}"],
     "syncd errors list: --out goes with export."),
    ("errors_export_with_id", ["errors", "export", "--id", "3", "--config", "{config}"],
     "syncd errors export: --id goes with retry."),
    ("errors_retry_id_past_sqlite", ["errors", "retry", "--id", "99999999999999999999999",
                                     "--config", "{config}"],
     "syncd errors retry: no refused record with id 99999999999999999999999; `syncd errors "
     "list` shows their ids."),
    ("errors_retry_unknown_id", ["errors", "retry", "--id", "7", "--id", "9", "--config",
                                 "{config}"],
     "syncd errors retry: no refused record with id 7, 9; `syncd errors list` shows their ids."),
]


@pytest.mark.parametrize("case,argv,line", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_a_mistyped_command_line_is_one_line_and_exit_2(
    case: str, argv: list[str], line: str, tmp_path: Path, store_bytes: bytes,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(GOOD_CONFIG, encoding="utf-8")
    (tmp_path / "syncd.db").write_bytes(store_bytes)
    before = files_under(tmp_path)
    done = answer([filled(arg, config) for arg in argv], capsys)
    commands = ", ".join(sorted(cli.commands))
    assert done.err == filled(line, config).replace("{commands}", commands) + "\n"
    assert_refused(done, before, tmp_path)


def test_a_command_that_reads_the_store_before_any_pass_says_to_run_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(GOOD_CONFIG, encoding="utf-8")
    before = files_under(tmp_path)
    for command in (["status"], ["errors", "list"], ["errors", "export"]):
        done = answer([*command, "--config", str(config)], capsys)
        assert done.err == (
            f"No store at {tmp_path / 'syncd.db'} yet: run `syncd run --once` first.\n"
        )
        assert_refused(done, before, tmp_path)
