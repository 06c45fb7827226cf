"""Salesforce OAuth: where the connector's access token comes from, per `salesforce.auth`.

`token` uses the configured access token as is (it cannot be renewed, so a 401 ends the run);
`jwt` (JWT bearer flow: an RS256 assertion signed with the connected app's private key),
`client_credentials` and `password` ask the org's token endpoint for a fresh token, so they can
renew an expired session once. Every token obtained goes through `register_secret()` so that no
log line can show it. All calls go through the connector's own trusting `requests.Session`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import requests

from syncd.config import SalesforceSettings
from syncd.errors import AuthError, ConfigError, RetryableError
from syncd.log import register_secret

SYSTEM = "salesforce"
TOKEN_PATH = "/services/oauth2/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = 180  # seconds: Salesforce accepts at most 3 minutes [doc]


@dataclass(frozen=True)
class Grant:
    """An access token and the instance it is valid on."""

    access_token: str
    instance_url: str


class TokenSource:
    """Hands out access tokens for one org: the configured one, or fresh ones by OAuth."""

    def __init__(
        self,
        settings: SalesforceSettings,
        session: requests.Session,
        *,
        clock: Callable[[], float] = time.time,
        timeout: float = 60.0,
    ) -> None:
        self.settings = settings
        self.session = session
        self.clock = clock
        self.timeout = timeout

    @property
    def refreshable(self) -> bool:
        """Whether an expired session can be renewed (every flow but a fixed token)."""
        return self.settings.auth != "token"

    def grant(self) -> Grant:
        """A token to use now: the configured one, or a new one from the token endpoint."""
        settings = self.settings
        if settings.auth == "token":
            token = _secret(settings.access_token)
            if not token:
                raise ConfigError(["Missing salesforce.access_token (auth = \"token\")."])
            return Grant(token, settings.instance_url)
        url, form = self._request()
        return self._post(url, form)

    def _request(self) -> tuple[str, dict[str, str]]:
        """The token endpoint and form of the configured flow."""
        settings = self.settings
        if settings.auth == "jwt":
            return settings.login_url + TOKEN_PATH, {
                "grant_type": JWT_GRANT,
                "assertion": self._assertion(),
            }
        if settings.auth == "client_credentials":
            # The client-credentials flow is served by the org's own My Domain, not login.
            return settings.instance_url + TOKEN_PATH, {
                "grant_type": "client_credentials",
                "client_id": settings.client_id or "",
                "client_secret": _secret(settings.client_secret),
            }
        return settings.login_url + TOKEN_PATH, {
            "grant_type": "password",
            "client_id": settings.client_id or "",
            "client_secret": _secret(settings.client_secret),
            "username": settings.username or "",
            "password": _secret(settings.password),
        }

    def _assertion(self) -> str:
        """The signed JWT bearer assertion: iss = consumer key, sub = user, aud = login URL."""
        settings = self.settings
        if settings.private_key_file is None:
            raise ConfigError(["Missing salesforce.private_key_file (auth = \"jwt\")."])
        try:
            key = settings.private_key_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                [f"salesforce.private_key_file: {settings.private_key_file} cannot be read "
                 f"({exc.strerror})."]
            ) from None
        claims = {
            "iss": settings.consumer_key,
            "sub": settings.username,
            "aud": settings.login_url,
            "exp": int(self.clock()) + ASSERTION_LIFETIME,
        }
        return jwt.encode(claims, key, algorithm="RS256")

    def _post(self, url: str, form: dict[str, str]) -> Grant:
        flow = self.settings.auth
        where = {"system": SYSTEM, "method": "POST", "url": url, "object_name": "oauth2"}
        try:
            answer = self.session.post(url, data=form, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise RetryableError(
                f"Salesforce token endpoint POST {url} did not answer ({type(exc).__name__}).",
                retry_after=None, **where,
            ) from None
        if answer.status_code >= 500 or answer.status_code == 429:
            raise RetryableError(
                f"Salesforce token endpoint POST {url} answered {answer.status_code}; retrying.",
                retry_after=None, **where,
            )
        body = _json(answer)
        if answer.status_code != 200 or "access_token" not in body:
            reason = body.get("error_description") or body.get("error") or answer.reason
            raise AuthError(
                f"Salesforce refused the {flow} login at POST {url}: {answer.status_code} "
                f"{reason}. Check the salesforce credentials in the config.",
                **where,
            )
        token = str(body["access_token"])
        register_secret(token)
        instance = str(body.get("instance_url") or self.settings.instance_url).rstrip("/")
        return Grant(token, instance)


def _secret(value: Any) -> str:
    return "" if value is None else str(value.get_secret_value())


def _json(answer: requests.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
