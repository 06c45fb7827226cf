"""Shared fixtures: the loopback emulators and the real client libraries pointed at them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from connectors.loopback import ThrowawayCA


@pytest.fixture(scope="session")
def loopback_ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    return ThrowawayCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def hubspot_emulator(loopback_ca: ThrowawayCA) -> Iterator[Any]:
    from connectors.hubspot.emulator import HubSpotEmulator

    with HubSpotEmulator(ca=loopback_ca) as emulator:
        yield emulator


@pytest.fixture
def salesforce_emulator(loopback_ca: ThrowawayCA) -> Iterator[Any]:
    from connectors.salesforce.emulator import SalesforceEmulator

    with SalesforceEmulator(ca=loopback_ca) as emulator:
        yield emulator


@pytest.fixture
def hubspot_client(hubspot_emulator: Any) -> Any:
    """The real hubspot-api-client, talking to the emulator through urllib3."""
    import hubspot

    return hubspot.Client.create(
        access_token=hubspot_emulator.access_token,
        host=hubspot_emulator.url,
        ssl_ca_cert=str(hubspot_emulator.ca_path),
    )


def trusting_session(ca_path: Path) -> requests.Session:
    """A requests session that trusts only the loopback CA, whatever REQUESTS_CA_BUNDLE says."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(ca_path)
    return session


@pytest.fixture
def salesforce_client(salesforce_emulator: Any) -> Any:
    """The real simple-salesforce client, with a session token issued by the emulator."""
    from simple_salesforce.api import Salesforce

    return Salesforce(
        instance_url=salesforce_emulator.url,
        session_id=salesforce_emulator.issue_token(),
        version=salesforce_emulator.api_version,
        session=trusting_session(salesforce_emulator.ca_path),
    )


@pytest.fixture
def world(tmp_path: Path, loopback_ca: ThrowawayCA) -> Iterator[Any]:
    """Both emulators on one test clock, a config pointing at them, and passes of syncd
    (tests/harness.py)."""
    from tests.harness import make_world

    yield from make_world(tmp_path, loopback_ca)
