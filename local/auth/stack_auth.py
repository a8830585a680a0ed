"""Who plays the template's token issuers on a running local stack (docs/local-stack.md,
"Authentication"): each user pool is a local issuer at its ProviderURL, each JWT authorizer whose
issuer is not such a pool gets a local issuer of its own, and function environment values equal
to a template issuer (Cognito's URL of a pool, an external URL) become the local URL. All sign
with the state directory's key. The first JWT authorizer's issuer (else the first pool's) mints
the dev token and is the one `load_issuer` finds. Imported only for templates with authorizers.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from local.auth.issuer import DEV_SUBJECT, DISCOVERY_PATH, JWKS_PATH, LocalIssuer, SigningKey
from local.gateways.jwt_authorizer import IdentitySource, JwtValidator
from local.template.intrinsics import IntrinsicError
from local.template.model import ISSUERS_PATH, StackModel
from local.template.report import FindingKind
from local.template.values import LocalValues


def _slug(issuer: str) -> str:
    """A path segment naming an external issuer: `https://tenant.example.com/x/` -> `tenant.example.com-x`."""
    text = issuer.split("://", 1)[-1]
    return re.sub(r"[^A-Za-z0-9._~-]+", "-", text).strip("-.") or "issuer"


def iso_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@dataclass
class StackAuth:
    key: SigningKey
    issuers: dict[str, LocalIssuer]  # by path segment under /_local/issuers/
    validators: dict[str, JwtValidator]  # by JWT authorizer logical id
    replacements: dict[str, str]  # external issuer (as in the template) -> local issuer URL
    template_issuers: dict[str, str] = field(default_factory=dict)  # local URL -> external issuer
    primary: LocalIssuer | None = None
    dev_subject: str = DEV_SUBJECT
    dev_token: str | None = None
    dev_expires: float = 0.0

    def environment_value(self, value: str) -> str:
        """A function's environment value, with an external issuer replaced by its local one."""
        return self.replacements.get(value, value)

    def routes(self) -> list[web.RouteDef]:
        """The issuers' discovery document and JWKS, for the server the issuer URLs point at."""

        def issuer_of(request: web.Request) -> LocalIssuer:
            issuer = self.issuers.get(request.match_info["issuer_id"])
            if issuer is None:
                raise web.HTTPNotFound(
                    text='{"message":"no such local issuer"}', content_type="application/json"
                )
            return issuer

        headers = {"access-control-allow-origin": "*", "cache-control": "no-store"}

        async def discovery(request: web.Request) -> web.Response:
            return web.json_response(issuer_of(request).discovery(), headers=headers)

        async def jwks(request: web.Request) -> web.Response:
            return web.json_response(issuer_of(request).jwks(), headers=headers)

        base = ISSUERS_PATH + "/{issuer_id}"
        return [web.get(base + DISCOVERY_PATH, discovery), web.get(base + JWKS_PATH, jwks)]

    def state(self) -> dict[str, Any]:
        """The `auth` block of the running stack's state file (local.auth.issuer.load_issuer reads it)."""
        primary = self.primary
        return {
            "issuer": primary.url if primary else None,
            "audience": list(primary.audience) if primary else [],
            "jwksUrl": primary.jwks_url if primary else None,
            "discoveryUrl": primary.discovery_url if primary else None,
            "kid": self.key.kid,
            "keyFile": str(self.key.path.resolve()),
            "devSubject": self.dev_subject if self.dev_token else None,
            "devToken": self.dev_token,
            "devTokenExpires": iso_time(self.dev_expires) if self.dev_token else None,
            "issuers": [
                {
                    "issuer": issuer.url,
                    "audience": list(issuer.audience),
                    "jwksUrl": issuer.jwks_url,
                    "templateIssuer": self.template_issuers.get(issuer.url),
                }
                for issuer in self.issuers.values()
            ],
        }


def build_stack_auth(
    model: StackModel,
    values: LocalValues,
    state_dir: Path,
    dev_token_lifetime: float,
    now: float | None = None,
) -> StackAuth:
    key = SigningKey.load_or_create(state_dir)
    resolver = model.resolver(values)
    base = values.issuer_base
    by_url: dict[str, LocalIssuer] = {}
    auth = StackAuth(key=key, issuers={}, validators={}, replacements={})
    pseudo = model.pseudo
    for pool in model.user_pools.values():
        url = values.issuer_url(pool.logical_id)
        by_url[url] = LocalIssuer(url, [str(values.ref(client)) for client in pool.client_ids], key)
        # Other spellings of the pool's issuer a template may build: Cognito's own URL (as CDK's
        # HttpUserPoolAuthorizer joins it) and "https://" + ProviderName.
        cognito = f"https://cognito-idp.{pseudo.region}.{pseudo.url_suffix}/{values.ref(pool.logical_id)}"
        for alias in (cognito, "https://" + url.split("://", 1)[-1]):
            auth.replacements[alias] = url
    primary: LocalIssuer | None = None
    for spec in model.jwt_authorizers.values():
        subject = f"HTTP API authorizer {spec.display_name}"
        try:
            issuer = str(resolver.resolve(spec.issuer))
        except IntrinsicError as error:
            issuer = ""
            model.note(FindingKind.APPROXIMATED, subject, f"Issuer: {error}; a local issuer plays it")
        try:
            resolved = resolver.resolve(spec.audience)
            audience = [str(item) for item in (resolved if isinstance(resolved, list) else [resolved])]
        except IntrinsicError as error:
            audience = []
            model.note(FindingKind.UNSUPPORTED, subject, f"Audience: {error}; every token gets 401")
        local = by_url.get(auth.replacements.get(issuer, issuer))
        if local is None:
            url = f"{base}/{_slug(issuer) if issuer else spec.logical_id.lower()}"
            local = by_url.get(url)
            if local is None:
                local = by_url[url] = LocalIssuer(url, audience, key)
            else:
                local.audience = tuple(dict.fromkeys(local.audience + tuple(audience)))
            if issuer:
                auth.template_issuers[url] = issuer
                for variant in {issuer, issuer.rstrip("/"), issuer.rstrip("/") + "/"}:
                    auth.replacements[variant] = url
                model.note(
                    FindingKind.APPROXIMATED,
                    f"JWT issuer {issuer}",
                    f"played by the local issuer {url}: tokens are minted with the local key and that "
                    f"iss, authorizer {spec.display_name} checks them against it, and function "
                    "environment values equal to the issuer are set to it",
                )
        source = IdentitySource.parse(spec.identity_source)
        assert source is not None  # the model keeps only parsable identity sources
        auth.validators[spec.logical_id] = JwtValidator(local.verifier(audience), source)
        model.note(
            FindingKind.SATISFIED,
            subject,
            f"JWT checked like API Gateway does (from {spec.identity_source}; issuer {local.url}, "
            f"audience {', '.join(audience) or '-'}; RS256/384/512): 401 before the function otherwise",
        )
        primary = primary or local
    auth.issuers = {url.removeprefix(base + "/"): issuer for url, issuer in by_url.items()}
    auth.primary = primary or next(iter(by_url.values()), None)
    if auth.primary is not None:
        issued = int(time.time() if now is None else now)
        auth.dev_token = auth.primary.mint(auth.dev_subject, expires_in=dev_token_lifetime, now=issued)
        auth.dev_expires = issued + int(dev_token_lifetime)
    elif model.request_authorizers:
        model.note(
            FindingKind.INFO,
            "authentication",
            "no user pool or JWT authorizer in this template: no local issuer and no dev token; the "
            "WebSocket authorizer functions decide from the request alone",
        )
    return auth
