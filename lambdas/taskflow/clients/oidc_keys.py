"""IssuerKeys: the public signing keys of a token issuer, found by OpenID Connect discovery.

    {issuer without trailing slash}/.well-known/openid-configuration  ->  jwks_uri  ->  the JWK set

Used only by the WebSocket $connect authorizer (taskflow.handlers.ws_authorizer), the one function
whose package has PyJWT (a layer): no module the other functions import may import this one.

Caching, for the life of the warm execution environment: the discovery document once, the JWK set
for KEY_SET_LIFESPAN_SECONDS. A key id the cached set lacks (the issuer rotated its keys) fetches
the set again once, at most once per REFRESH_COOLDOWN_SECONDS, so tokens naming made-up key ids
cannot make every invocation call the issuer.

When the set is due for its refresh but the issuer cannot be reached, the cached set stays in use
(for at most MAX_STALE_SECONDS past its lifespan, trying again every REFRESH_COOLDOWN_SECONDS), so
an identity provider's short outage does not refuse every new connection; a token naming a key
the cached set lacks still needs the issuer.

Failures are told apart, because API Gateway answers them differently:

* the token names a key the issuer does not publish -> UnknownSigningKeyError (the token's fault:
  the authorizer answers Unauthorized, 401);
* the issuer cannot be reached or answers nonsense -> DependencyUnavailableError (not the token's
  fault: the authorizer fails otherwise, and API Gateway answers 500).

Every request has a short timeout (TIMEOUT_SECONDS) and follows no redirect.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import jwt

from taskflow.errors import DependencyUnavailableError
from taskflow.observability import logger

DISCOVERY_PATH: Final = "/.well-known/openid-configuration"
TIMEOUT_SECONDS: Final = 4.0  # each request; a cold start makes two, within the 10 s function timeout
KEY_SET_LIFESPAN_SECONDS: Final = 900.0
REFRESH_COOLDOWN_SECONDS: Final = 30.0
MAX_STALE_SECONDS: Final = 6 * 3600.0
MAX_DOCUMENT_BYTES: Final = 1024 * 1024
DEPENDENCY: Final = "token issuer keys"

# What fetching or reading a document can raise: URLError/HTTPError/timeouts (OSError), broken
# HTTP (HTTPException), bad JSON (ValueError), and PyJWT's own errors for an unusable JWK set.
_FETCH_ERRORS: Final = (OSError, http.client.HTTPException, ValueError, jwt.PyJWTError)


class UnknownSigningKeyError(Exception):
    """The issuer publishes no signing key with this key id."""

    def __init__(self, kid: str) -> None:
        super().__init__(f"the issuer publishes no signing key {kid[:64]!r}")


class SigningKeys(Protocol):
    """What the token verifier needs; tests may pass a fake."""

    def signing_key(self, kid: str) -> jwt.PyJWK: ...


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_: Any, **__: Any) -> None:
        return None


class IssuerKeys:
    def __init__(
        self,
        issuer: str,
        *,
        timeout_seconds: float = TIMEOUT_SECONDS,
        lifespan_seconds: float = KEY_SET_LIFESPAN_SECONDS,
        refresh_cooldown_seconds: float = REFRESH_COOLDOWN_SECONDS,
        max_stale_seconds: float = MAX_STALE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.discovery_url = issuer.rstrip("/") + DISCOVERY_PATH
        self._timeout = timeout_seconds
        self._lifespan = lifespan_seconds
        self._cooldown = refresh_cooldown_seconds
        self._max_stale = max_stale_seconds
        self._monotonic = monotonic
        self._key_client: jwt.PyJWKClient | None = None
        self._last_forced_refresh: float | None = None
        self._keys: list[jwt.PyJWK] | None = None  # the last set fetched
        self._fetched_at = 0.0  # when it was fetched (monotonic)
        self._next_fetch_at = 0.0  # when the set is due for a refresh (monotonic)

    def signing_key(self, kid: str) -> jwt.PyJWK:
        """The issuer's signing key with key id `kid`."""
        key = _match(self._signing_keys(refresh=False), kid)
        if key is None and self._may_refresh():
            key = _match(self._signing_keys(refresh=True), kid)
        if key is None:
            raise UnknownSigningKeyError(kid)
        return key

    def _may_refresh(self) -> bool:
        now = self._monotonic()
        if self._last_forced_refresh is not None and now - self._last_forced_refresh < self._cooldown:
            return False
        self._last_forced_refresh = now
        return True

    def _signing_keys(self, *, refresh: bool) -> list[jwt.PyJWK]:
        """The cached set while it is fresh (and not `refresh`), else a fetched one."""
        now = self._monotonic()
        if self._keys is not None and not refresh and now < self._next_fetch_at:
            return self._keys
        try:
            client = self._client()
            keys = client.get_signing_keys(refresh=True)
        except (*_FETCH_ERRORS, DependencyUnavailableError) as error:
            usable = self._keys is not None and now - self._fetched_at < self._lifespan + self._max_stale
            if self._keys is None or refresh or not usable:
                if isinstance(error, DependencyUnavailableError):
                    raise
                uri = self._key_client.uri if self._key_client else self.discovery_url
                raise DependencyUnavailableError(DEPENDENCY, f"JWK set at {uri}: {error}") from error
            self._next_fetch_at = now + self._cooldown
            logger.warning(
                "token issuer keys unreachable: using the cached key set",
                extra={
                    "issuer": self.issuer,
                    "age_seconds": round(now - self._fetched_at),
                    "error": str(error),
                },
            )
            return self._keys
        self._keys, self._fetched_at, self._next_fetch_at = keys, now, now + self._lifespan
        return keys

    def _client(self) -> jwt.PyJWKClient:
        if self._key_client is None:
            self._key_client = jwt.PyJWKClient(
                self._jwks_uri(),
                cache_jwk_set=False,  # cached here, by this class's clock
                timeout=self._timeout,
                headers={"Accept": "application/json"},
            )
        return self._key_client

    def _jwks_uri(self) -> str:
        """Where the JWK set is, from the issuer's discovery document."""
        document = self._fetch_json(self.discovery_url)
        jwks_uri = document.get("jwks_uri") if isinstance(document, dict) else None
        if not isinstance(jwks_uri, str):
            raise DependencyUnavailableError(DEPENDENCY, f"{self.discovery_url} names no jwks_uri")
        scheme = urlsplit(jwks_uri).scheme
        # An https issuer's keys come over https; plain http only from a plain http issuer (local).
        allowed = ("https",) if urlsplit(self.issuer).scheme == "https" else ("https", "http")
        if scheme not in allowed:
            raise DependencyUnavailableError(DEPENDENCY, f"jwks_uri {jwks_uri!r} is not {allowed[0]}")
        return jwks_uri

    def _fetch_json(self, url: str) -> Any:
        request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - http(s) only
        opener = urllib.request.build_opener(_NoRedirects())
        try:
            with opener.open(request, timeout=self._timeout) as response:
                body = response.read(MAX_DOCUMENT_BYTES + 1)
            if len(body) > MAX_DOCUMENT_BYTES:
                raise ValueError(f"the document is over {MAX_DOCUMENT_BYTES} bytes")
            return json.loads(body)
        except _FETCH_ERRORS as error:
            raise DependencyUnavailableError(DEPENDENCY, f"{url}: {error}") from error


def _match(keys: list[jwt.PyJWK], kid: str) -> jwt.PyJWK | None:
    return next((key for key in keys if key.key_id == kid), None)
