"""The local token issuer: a signing key, its JWKS, OIDC discovery, and minting tokens. What it
serves and where, the key's file and why it is kept: docs/local-stack.md, "Authentication".

Tokens for a running stack: `load_issuer(...).mint(...)`, or `python -m local.token --sub alice`.
This module imports PyJWT and cryptography: the local stack imports it only when the template has
authorizers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from jwt.utils import base64url_encode

from local.state.running_stack import StateFileError, running_stack_state

# Tokens are checked by the Lambda code's verifier (lambdas/taskflow, one for the local stack and
# AWS). local/ may import it, never the other way round; `python -m local` puts only the
# repository root on sys.path.
LAMBDA_CODE = str(Path(__file__).resolve().parents[2] / "lambdas")
if LAMBDA_CODE not in sys.path:
    sys.path.append(LAMBDA_CODE)

from taskflow.services.token_verifier import TokenVerifier  # noqa: E402 - needs LAMBDA_CODE on sys.path

KEY_FILE = "signing-key.pem"  # under <state-dir>/auth/
SIGNING_ALGORITHM = "RS256"
KEY_SIZE = 2048
DEFAULT_LIFETIME_SECONDS = 3600  # Cognito's default for ID and access tokens
DEV_SUBJECT = "local-dev-user"
DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/.well-known/jwks.json"


class AuthError(Exception):
    """No running stack with a local issuer, or an unusable key file."""


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638: SHA-256 over the required members (e, kty, n), sorted, no whitespace."""
    required = {name: jwk[name] for name in ("e", "kty", "n")}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True)
    return base64url_encode(hashlib.sha256(canonical.encode()).digest()).decode()


@dataclass(frozen=True)
class SigningKey:
    """The issuer's RSA key and its public JWK."""

    private_key: rsa.RSAPrivateKey
    path: Path

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    @property
    def kid(self) -> str:
        return jwk_thumbprint(RSAAlgorithm.to_jwk(self.public_key, as_dict=True))

    def public_jwk(self) -> dict[str, Any]:
        """As Cognito publishes its keys: `use`, without the `key_ops` PyJWT adds (RFC 7517 4.3)."""
        jwk = RSAAlgorithm.to_jwk(self.public_key, as_dict=True)
        jwk.pop("key_ops", None)
        return {**jwk, "kid": jwk_thumbprint(jwk), "use": "sig", "alg": SIGNING_ALGORITHM}

    @classmethod
    def load_or_create(cls, state_dir: Path) -> SigningKey:
        """The key of `state_dir`, created (0600) the first time; two stacks starting at once agree."""
        folder = Path(state_dir) / "auth"
        path = folder / KEY_FILE
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            temporary = folder / f".{KEY_FILE}.{os.getpid()}.{uuid.uuid4().hex}"
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(descriptor, "wb") as handle:
                    handle.write(pem)
                with contextlib.suppress(FileExistsError):  # another stack won the race: use its key
                    os.link(temporary, path)
            finally:
                temporary.unlink(missing_ok=True)
        return cls.load(path)

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        try:
            pem = Path(path).read_bytes()
        except OSError as error:
            raise AuthError(f"cannot read the local issuer's key {path}: {error.strerror}") from None
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as error:
            raise AuthError(f"{path} is not an unencrypted PEM private key: {error}") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise AuthError(f"{path} is not an RSA key")
        if os.stat(path).st_mode & 0o077:
            with contextlib.suppress(OSError):
                os.chmod(path, 0o600)
        return cls(key, Path(path))


class LocalIssuer:
    """One token issuer: its URL (the tokens' `iss`), accepted audiences, and the signing key."""

    def __init__(self, url: str, audience: Sequence[str], key: SigningKey) -> None:
        self.url = url
        self.audience: tuple[str, ...] = tuple(audience)
        self.key = key

    @property
    def kid(self) -> str:
        return self.key.kid

    @property
    def jwks_url(self) -> str:
        return self.url.rstrip("/") + JWKS_PATH

    @property
    def discovery_url(self) -> str:
        return self.url.rstrip("/") + DISCOVERY_PATH

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.public_jwk()]}

    def discovery(self) -> dict[str, Any]:
        """The OpenID Provider metadata an authorizer reads to find the JWKS."""
        return {
            "issuer": self.url,
            "jwks_uri": self.jwks_url,
            "id_token_signing_alg_values_supported": [SIGNING_ALGORITHM],
            "subject_types_supported": ["public"],
            "response_types_supported": ["token", "id_token"],
            "claims_supported": ["sub", "iss", "aud", "client_id", "exp", "iat", "token_use", "scope"],
        }

    def claims(
        self,
        subject: str,
        *,
        expires_in: float = DEFAULT_LIFETIME_SECONDS,
        audience: str | None = None,
        token_use: str = "id",  # noqa: S107 - a claim value, not a password
        scope: str | None = None,
        claims: Mapping[str, Any] | None = None,
        now: float | None = None,
        not_before: float | None = None,
    ) -> dict[str, Any]:
        """A token's claims, shaped like Cognito's.

        `token_use="id"`: `aud` is the audience (an ID token); `token_use="access"`: `client_id`
        is, and `scope` is set (an access token). `audience` defaults to the issuer's first
        accepted audience; `expires_in` may be negative (an expired token); `claims` are added
        last and may override anything.
        """
        issued_at = int(time.time() if now is None else now)
        chosen = audience if audience is not None else (self.audience[0] if self.audience else "")
        result: dict[str, Any] = {
            "sub": subject,
            "iss": self.url,
            "token_use": token_use,
            "auth_time": issued_at,
            "iat": issued_at,
            "exp": issued_at + int(expires_in),
            "jti": str(uuid.uuid4()),
        }
        if token_use == "access":  # noqa: S105 - a claim value
            result["client_id"] = chosen
            result["scope"] = scope if scope is not None else "openid"
            result["username"] = subject
        else:
            result["aud"] = chosen
            result["cognito:username"] = subject
            if scope is not None:
                result["scope"] = scope
        if not_before is not None:
            result["nbf"] = int(not_before)
        result.update(claims or {})
        return result

    def mint(self, subject: str, **options: Any) -> str:
        """A signed token for `subject` (options: those of `claims`)."""
        return self.sign(self.claims(subject, **options))

    def sign(self, claims: Mapping[str, Any]) -> str:
        return jwt.encode(
            dict(claims),
            self.key.private_key,
            algorithm=SIGNING_ALGORITHM,
            headers={"kid": self.kid, "typ": "JWT"},
        )

    def verifier(self, audience: Sequence[str] | None = None) -> TokenVerifier:
        """The verifier of this issuer's tokens for `audience` (default: its own audiences)."""
        audiences = self.audience if audience is None else audience
        return TokenVerifier.from_jwks(self.jwks(), issuer=self.url, audiences=audiences)

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a token this issuer signed, checked as the authorizers check them
        (signature, iss, exp/nbf/iat, `aud` or else `client_id`); jwt.InvalidTokenError otherwise."""
        return self.verifier().claims(token)

    def subject_of(self, token: str) -> str:
        """The `sub` of a token this issuer signed (signature checked, lifetime not)."""
        claims = jwt.decode(
            token,
            self.key.public_key,
            algorithms=[SIGNING_ALGORITHM],
            options={"verify_exp": False, "verify_aud": False, "verify_iss": False},
        )
        return str(claims["sub"])


# --- the running stack's issuer (state file) -----------------------------------------------


def load_issuer(
    state_dir: Path = Path(".local-state"), *, stage: str | None = None, stack: str | None = None
) -> LocalIssuer:
    """The running stack's local issuer (its URL, audiences and key), to mint tokens for it."""
    try:
        state = running_stack_state(state_dir, stage=stage, stack=stack)
    except StateFileError as error:
        raise AuthError(str(error)) from None
    auth = state.get("auth")
    if not isinstance(auth, dict):
        raise AuthError(
            f"the local stack {state.get('stack')} has no authorizers (a stage with `auth: none`): "
            "its APIs take no tokens"
        )
    if not auth.get("issuer"):
        raise AuthError(
            f"the local stack {state.get('stack')} has no JWT issuer (no user pool or JWT authorizer): "
            "its authorizer functions decide from the request alone"
        )
    key_file = Path(str(auth.get("keyFile") or Path(state_dir) / "auth" / KEY_FILE))
    audience = [str(item) for item in auth.get("audience", [])]
    return LocalIssuer(str(auth["issuer"]), audience, SigningKey.load(key_file))
