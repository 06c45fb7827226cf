"""The daemon's status page in a real browser: headless Chromium loads it and finds the last
pass and the charts (issue 7). Chromium comes from Debian's `chromium` package, which `.ci/run`
installs; without it the test fails where SYNCD_REQUIRE_BROWSER is set (CI) and skips elsewhere."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from syncd.metrics import Health, Metrics
from syncd.server import StatusServer, StatusSources
from tests.harness import World

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium(*args: str, profile: Path) -> str:
    if CHROMIUM is None:
        if os.environ.get("SYNCD_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    done = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_status_page_loads_in_chromium_with_the_last_pass_and_its_charts(
    world: World, tmp_path: Path
) -> None:
    world.org.insert("Lead", {"LastName": "Lovelace", "Company": "Engines", "Email": "ada@x.com"})
    world.portal.create("contacts", {"email": "grace@x.com", "lifecyclestage": "lead"})
    world.sync()
    last = world.sync()
    health = Health(started_at=world.clock.now, interval=timedelta(minutes=5))
    sources = StatusSources(world.settings.store.path, health, Metrics(),
                            {"hubspot": 0.5, "salesforce": 0.25}, world.clock)
    server = StatusServer(sources, port=0, host="127.0.0.1").start()
    try:
        dom = chromium("--dump-dom", server.url + "/", profile=tmp_path / "profile")
        shot = Path(os.environ.get("SYNCD_SCREENSHOT", tmp_path / "status.png"))
        chromium(f"--screenshot={shot}", "--window-size=1200,1600", server.url + "/",
                 profile=tmp_path / "profile")
    finally:
        server.stop()
    assert "<svg" in dom and dom.count("<svg") >= 2
    assert f">{last.run}<" in dom and ">ok<" in dom
    assert "Rows per object" in dom and "API calls per pass" in dom
    assert shot.stat().st_size > 10_000
