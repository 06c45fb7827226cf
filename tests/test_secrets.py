"""Tokens, passwords and keys never appear in any output of any command, at debug level too
(issue 7): every command is run in-process with known secrets and its output searched."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.cli import run
from tests.harness import World

CLIENT_SECRET = "syncd-emulator-secret"


def commands(config: Path) -> list[list[str]]:
    base = ["--config", str(config), "--log-level", "debug"]
    return [
        ["check", *base],
        ["check", "--online", *base],
        ["run", "--once", *base],
        ["run", "--once", "--dry-run", *base],
        ["plan", *base],
        ["status", *base],
        ["errors", "list", *base],
        ["errors", "export", *base],
        ["run", "--once", "--full", *base],
    ]


def client_credentials_config(world: World) -> Path:
    """The world's config with Salesforce reached through the client-credentials flow, so a
    token obtained at run time is in play too."""
    text = world.config.read_text()
    token = world.settings.salesforce.access_token.get_secret_value()  # type: ignore[union-attr]
    text = text.replace(f'access_token = "{token}"',
                        f'auth = "client_credentials"\nclient_id = "{world.salesforce.client_id}"\n'
                        f'client_secret = "{CLIENT_SECRET}"')
    path = world.config.with_name("cc.toml")
    path.write_text(text)
    return path


@pytest.mark.parametrize("flow", ["token", "client_credentials"])
def test_no_command_prints_a_secret_at_debug_level(
    world: World, flow: str, capsys: pytest.CaptureFixture[str]
) -> None:
    world.org.insert("Lead", {"LastName": "Lovelace", "Company": "Engines", "Email": "ada@x.com"})
    world.portal.create("contacts", {"email": "grace@x.com"})
    config = world.config if flow == "token" else client_credentials_config(world)
    seen = []
    for argv in commands(config):
        code = run(argv)
        out = capsys.readouterr()
        seen.append(out.out + out.err)
        assert code in (0, 1, 2), (argv, out.err)
    text = "\n".join(seen)
    assert "level=debug" in text  # the debug log was on
    secrets = {world.hubspot.access_token, CLIENT_SECRET,
               *world.salesforce._tokens}  # every token the org issued or accepts
    found = [secret for secret in secrets if secret and secret in text]
    assert found == []
