"""A loopback Salesforce: the REST API, sObject Collections, Bulk API 2.0 and OAuth over HTTPS.

The real simple-salesforce 1.12.10 drives it exactly as it drives production (wire reference
0.2): every URL in 0.2's list routes, with or without a trailing slash, under
`/services/data/v{version}/`. Bearer tokens are checked on every call but the token endpoint;
each authenticated call counts against DailyApiRequests, reported in `Sforce-Limit-Info`.

`SalesforceEmulator` wires an `Org` (the in-memory data, `org.py` with `tables.py`, `ids.py`,
`values.py`; SOQL in `soql.py` with `soql_parser.py`, `soql_binding.py`,
`soql_predicates.py`) and the endpoints (`emulator_oauth.py`, `emulator_describe.py`,
`emulator_query.py`, `emulator_sobjects.py`, `emulator_collections.py`, Bulk API 2.0 in
`bulk.py`) to a `LoopbackServer`; this module holds what every request passes through: the
session check, the API usage count and Salesforce's error envelopes for injected faults.

Run it alone with `python -m connectors.salesforce.emulator [--port N]`.
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from collections.abc import Callable
from datetime import datetime

from connectors.loopback import (
    Emulator,
    Faults,
    LoopbackServer,
    Request,
    Response,
    Router,
    ThrowawayCA,
)

from .bulk import BulkApi
from .emulator_collections import CollectionsApi
from .emulator_describe import DescribeApi
from .emulator_oauth import TOKEN_PATH, OAuthApi, generate_jwt_key_pair
from .emulator_query import QueryApi
from .emulator_sobjects import SObjectsApi
from .emulator_wire import NOT_FOUND, errors
from .org import Org, Screen
from .values import OrgError

DATA = "/services/data/v{version}"


class SalesforceEmulator(Emulator):
    """An in-memory Salesforce org served over HTTPS on 127.0.0.1."""

    def __init__(
        self,
        *,
        faults: Faults | None = None,
        ca: ThrowawayCA | None = None,
        port: int = 0,
        clock: Callable[[], datetime] | None = None,
        api_version: str = "59.0",
        daily_limit: int = 100_000,
        access_token: str | None = None,
        consumer_key: str = "syncd-emulator-consumer-key",
        jwt_public_key_pem: bytes | None = None,
        client_id: str = "syncd-emulator-client",
        client_secret: str = "syncd-emulator-secret",
        username: str = "integration@syncd.example",
        password: str = "syncd-emulator-password",
    ) -> None:
        self.org = Org(clock=clock)
        self.org.set_username(username)
        self.api_version = api_version
        self.daily_limit = daily_limit
        self.api_usage = 0
        self.consumer_key = consumer_key
        self.jwt_public_key_pem = jwt_public_key_pem
        self.client_id, self.client_secret = client_id, client_secret
        self.username, self.password = username, password
        self._tokens: set[str] = {access_token} if access_token else set()
        sobjects = SObjectsApi(self.org, self._screen)
        self.bulk = BulkApi(self.org, self._screen)
        self._oauth = OAuthApi(self.org, self, self._tokens)
        self._router = Router()
        for api in (DescribeApi(self.org, sobjects.sobject, self._usage, self.bulk),
                    QueryApi(self.org), CollectionsApi(sobjects, self._screen), self.bulk,
                    sobjects):
            api.routes(self._router, DATA)
        self.server = LoopbackServer(self._app, self.error_answer, faults=faults, ca=ca, port=port)

    # -- lifecycle and test hooks --

    def issue_token(self) -> str:
        """A fresh valid session id, org-id prefixed like Salesforce's (`00D...!AQ...`)."""
        with self.server.app_lock:
            return self._oauth.new_token()

    def expire_tokens(self) -> None:
        """Every token issued so far now answers 401 INVALID_SESSION_ID."""
        with self.server.app_lock:
            self._tokens.clear()

    @staticmethod
    def make_jwt_key_pair() -> tuple[bytes, bytes]:
        """(private PEM, public PEM) for `jwt_public_key_pem` and a client's assertion."""
        return generate_jwt_key_pair()

    # -- the app --

    def _app(self, request: Request) -> tuple[str, Response]:
        if request.path.rstrip("/") == TOKEN_PATH:
            return f"POST {TOKEN_PATH}", self._oauth.token(request)
        matched = self._router.match(request.method, request.path)
        endpoint = matched[0] if matched else f"{request.method} (not found)"
        response = self._authorized(request)
        if response is None:
            self.api_usage += 1
            response = self._handle(request, matched)
        response.headers["Sforce-Limit-Info"] = self._limit_info()
        return endpoint, response

    def _authorized(self, request: Request) -> Response | None:
        """None when the call may proceed; else the 401 or 403 Salesforce answers."""
        scheme, _, token = request.header("authorization").partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or token.strip() not in self._tokens:
            return errors("INVALID_SESSION_ID", "Session expired or invalid", 401)
        if self.api_usage >= self.daily_limit:
            return errors("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", 403)
        return None

    def _handle(
        self, request: Request, matched: tuple[str, Callable[..., Response], dict[str, str]] | None
    ) -> Response:
        if matched is None:
            return errors("NOT_FOUND", NOT_FOUND, 404)
        _, handler, params = matched
        version = params.get("version")
        if version is not None and not _is_version(version):
            return errors("NOT_FOUND", NOT_FOUND, 404)
        try:
            return handler(request, **params)
        except OrgError as error:
            return errors(error.error_code, error.message, error.status, error.fields)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            return errors("JSON_PARSER_ERROR", f"Unexpected character: {error}")

    def _screen(self) -> Screen | None:
        """The record refusal of the faults in force now (tests swap them while serving)."""
        return self.server.faults.rejects

    def _usage(self) -> tuple[int, int]:
        return self.api_usage, self.daily_limit

    def _limit_info(self) -> str:
        return f"api-usage={self.api_usage}/{self.daily_limit}"

    def error_answer(self, status: int, request: Request) -> Response:
        """Salesforce's envelope for an injected error status."""
        if request.path.rstrip("/") == TOKEN_PATH:
            response = Response(status, {"error": "temporarily_unavailable",
                                         "error_description": "service unavailable"})
        elif status == 429:
            # Salesforce REST never answers 429 (reference 2.8): a throttling storm shows as
            # 503 SERVER_UNAVAILABLE, its closest real answer to "slow down and retry".
            response = errors("SERVER_UNAVAILABLE", "Server temporarily unavailable", 503)
        elif status == 403:
            response = errors("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", 403)
        elif status == 401:
            response = errors("INVALID_SESSION_ID", "Session expired or invalid", 401)
        elif status == 503:
            response = errors("SERVER_UNAVAILABLE", "Server temporarily unavailable", 503)
        else:
            response = errors(
                "UNKNOWN_EXCEPTION",
                "An unexpected error occurred. Please include this ErrorId if you contact "
                f"support: {secrets.randbelow(10**9)}-{secrets.randbelow(10**5)} (-1)", status,
            )
        response.headers["Sforce-Limit-Info"] = self._limit_info()
        return response


def _is_version(text: str) -> bool:
    head, _, tail = text.partition(".")
    return head.isdigit() and tail.isdigit() and 20 <= int(head) <= 99


def main(argv: list[str] | None = None) -> None:
    """Serve an empty org until Ctrl-C, printing what a client needs to reach it."""
    parser = argparse.ArgumentParser(description="A loopback Salesforce org over HTTPS.")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any)")
    options = parser.parse_args(argv)
    with SalesforceEmulator(port=options.port) as emulator:
        print(f"url={emulator.url}")
        print(f"ca_path={emulator.ca_path}")
        print(f"access_token={emulator.issue_token()}")
        print(f"api_version={emulator.api_version}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
