"""The emulated OAuth 2.0 token endpoint, `POST /services/oauth2/token`: the JWT bearer,
client credentials and username-password flows (wire reference 2.1), answering with a
session id that the REST endpoints then accept. It answers unauthenticated and outside the
REST API's usage count.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import parse_qs

from connectors.loopback import Request, Response

from .org import Org

TOKEN_PATH = "/services/oauth2/token"
_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")


def generate_jwt_key_pair() -> tuple[bytes, bytes]:
    """A fresh RSA key pair for the JWT bearer flow: (private PEM, public PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


class Credentials(Protocol):
    """What a login is checked against, read at call time: the emulator's own settings."""

    consumer_key: str
    jwt_public_key_pem: bytes | None
    client_id: str
    client_secret: str
    username: str
    password: str

    @property
    def url(self) -> str: ...


class OAuthApi:
    """The token endpoint of an `Org`; issued tokens join `tokens`, the set of valid ones."""

    def __init__(self, org: Org, credentials: Credentials, tokens: set[str]) -> None:
        self.org = org
        self._credentials = credentials
        self._tokens = tokens

    def token(self, request: Request) -> Response:
        if request.method != "POST":
            return Response(405, {"error": "invalid_request", "error_description":
                                  "must use HTTP POST"})
        form = {k: v[0] for k, v in parse_qs(request.text(), keep_blank_values=True).items()}
        grant = form.get("grant_type", "")
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            refusal = self._jwt_refusal(form.get("assertion", ""))
        elif grant == "client_credentials":
            refusal = self._client_refusal(request, form)
        elif grant == "password":
            refusal = self._client_refusal(request, form) or self._password_refusal(form)
        else:
            return _oauth_error("unsupported_grant_type", "grant type not supported")
        return refusal or self._token_answer()

    def _jwt_refusal(self, assertion: str) -> Response | None:
        import jwt

        credentials = self._credentials
        if credentials.jwt_public_key_pem is None:
            return _oauth_error("invalid_client", "no certificate is configured for JWT bearer")
        try:
            claims = jwt.decode(
                assertion, credentials.jwt_public_key_pem, algorithms=["RS256"],
                options={"verify_exp": False, "verify_aud": False},
            )
        except jwt.PyJWTError:
            return _oauth_error("invalid_grant", "invalid assertion")
        if claims.get("iss") != credentials.consumer_key:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if claims.get("sub") != credentials.username:
            return _oauth_error("invalid_grant", "user hasn't approved this consumer")
        audiences = {*_AUDIENCES, credentials.url}
        if str(claims.get("aud", "")).rstrip("/") not in audiences:
            return _oauth_error("invalid_grant", "audience is invalid")
        # simple-salesforce sends `exp` as a string of seconds; accept either form.
        try:
            expires = float(claims.get("exp", 0))
        except (TypeError, ValueError):
            return _oauth_error("invalid_grant", "invalid assertion")
        if expires <= self.org.clock().timestamp():
            return _oauth_error("invalid_grant", "expired authorization code")
        return None

    def _client_refusal(self, request: Request, form: Mapping[str, str]) -> Response | None:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        scheme, _, encoded = request.header("authorization").partition(" ")
        if scheme.lower() == "basic":
            client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        if client_id != self._credentials.client_id:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if secret != self._credentials.client_secret:
            return _oauth_error("invalid_client", "invalid client credentials")
        return None

    def _password_refusal(self, form: Mapping[str, str]) -> Response | None:
        credentials = self._credentials
        if (form.get("username") != credentials.username
                or form.get("password") != credentials.password):
            return _oauth_error("invalid_grant", "authentication failure")
        return None

    def new_token(self) -> str:
        """A fresh valid session id, org-id prefixed like Salesforce's (`00D...!AQ...`)."""
        token = f"{self.org.org_id[:15]}!AQ{secrets.token_urlsafe(72)}"
        self._tokens.add(token)
        return token

    def _token_answer(self) -> Response:
        url = self._credentials.url
        token = self.new_token()
        issued = str(int(time.time() * 1000))
        signature = hmac.new(self._credentials.client_secret.encode(), f"{url}{issued}".encode(),
                             hashlib.sha256).digest()
        return Response(200, {
            "access_token": token, "instance_url": url,
            "id": f"https://login.salesforce.com/id/{self.org.org_id}/{self.org.user_id}",
            "token_type": "Bearer", "issued_at": issued,
            "signature": base64.b64encode(signature).decode(), "scope": "api",
        })


def _oauth_error(error: str, description: str) -> Response:
    return Response(400, {"error": error, "error_description": description})
