"""The template's HTTP and WebSocket APIs: stages, routes, integrations and authorizers, as specs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from local.gateways.cors import CorsConfig
from local.template.intrinsics import referenced_logical_ids
from local.template.model import (
    AUTHORIZER_TYPE,
    INTEGRATION_TYPE,
    ROUTE_RESPONSE_TYPE,
    ROUTE_TYPE,
    STAGE_TYPE,
    HttpApiSpec,
    HttpRouteSpec,
    JwtAuthorizerSpec,
    RequestAuthorizerSpec,
    StackModel,
    WebSocketApiSpec,
    WebSocketRouteSpec,
)
from local.template.report import FindingKind
from local.template.values import api_id_for


def _children(model: StackModel, resource_type: str, api_id: str) -> list[str]:
    return [
        lid
        for lid, resource in model.resources.items()
        if resource.get("Type") == resource_type
        and api_id in referenced_logical_ids(resource.get("Properties", {}).get("ApiId"))
    ]


def _route_function(model: StackModel, route_id: str, subject: str, missing: str) -> tuple[str | None, str]:
    """The function a route's integration invokes and its payload format version; None (reported,
    `missing` when the route has no integration) if it invokes none of this template's."""
    target = model.resources[route_id].get("Properties", {}).get("Target")
    integrations = [
        lid
        for lid in referenced_logical_ids(target)
        if model.resources.get(lid, {}).get("Type") == INTEGRATION_TYPE
    ]
    if not integrations:
        model.unsupported(subject, missing)
        return None, "2.0"
    integration = model.resources[integrations[0]].get("Properties", {})
    integration_type = integration.get("IntegrationType")
    version = str(integration.get("PayloadFormatVersion", "1.0"))
    if integration_type != "AWS_PROXY":
        model.unsupported(subject, f"integration type {integration_type}: route answers 500")
        return None, version
    functions = [
        lid for lid in referenced_logical_ids(integration.get("IntegrationUri")) if lid in model.functions
    ]
    if not functions:
        model.unsupported(subject, "integration target is not a function of this template")
        return None, version
    return functions[0], version


def read_api(model: StackModel, logical_id: str) -> None:
    properties = model.resources[logical_id].get("Properties", {})
    protocol = properties.get("ProtocolType")
    shown = model.display_name(logical_id)
    if protocol not in ("HTTP", "WEBSOCKET"):
        model.unsupported(f"API {shown}", f"ProtocolType {protocol!r} is not emulated")
        return
    stages = _children(model, STAGE_TYPE, logical_id)
    stage: dict[str, Any] = {}  # the last one: the one served
    for stage_id in stages:
        stage = model.resources[stage_id].get("Properties", {})
        _note_stage(model, f"{'WebSocket' if protocol == 'WEBSOCKET' else 'HTTP'} API {shown} stage", stage)
    stage_name = str(stage.get("StageName", "$default"))
    if len(stages) > 1:
        model.approximated(f"API {shown}", f"{len(stages)} stages: only {stage_name!r} is served")
    authorizers = _read_authorizers(model, logical_id, protocol)
    if protocol == "HTTP":
        _read_http_api(model, logical_id, properties, stage_name, authorizers)
    else:
        raw = stage.get("StageVariables") or {}
        variables = {str(k): str(v) for k, v in raw.items() if isinstance(v, str | int | float)}
        _read_websocket_api(model, logical_id, properties, stage_name, authorizers, stage_variables=variables)


def _note_stage(model: StackModel, subject: str, stage: dict[str, Any]) -> None:
    route_settings = stage.get("DefaultRouteSettings", {}) or {}
    rate = route_settings.get("ThrottlingRateLimit")
    burst = route_settings.get("ThrottlingBurstLimit")
    if rate is not None or burst is not None or stage.get("RouteSettings"):
        model.unsupported(
            subject, f"throttling (rate {rate}/s, burst {burst}) is not enforced: no 429s locally"
        )
    if stage.get("AccessLogSettings"):
        model.note(FindingKind.NOT_EMULATED, subject, "access logs (every invocation is printed instead)")


Authorizer = JwtAuthorizerSpec | RequestAuthorizerSpec

_JWT_IDENTITY_SOURCE = re.compile(r"\$request\.(header|querystring)\.[^\s,]+")
_REQUEST_IDENTITY_SOURCE = re.compile(
    r"(route\.request\.(header|querystring)|stageVariables|context)\.[^\s,]+"
)


def _read_authorizers(model: StackModel, api_logical_id: str, protocol: str) -> dict[str, Authorizer]:
    """The authorizers of an API that the local gateways run, by logical id; the rest reported."""
    api_kind = "WebSocket" if protocol == "WEBSOCKET" else "HTTP"
    result: dict[str, Authorizer] = {}
    for logical_id in _children(model, AUTHORIZER_TYPE, api_logical_id):
        properties = model.resources[logical_id].get("Properties", {})
        shown = model.display_name(logical_id)
        kind = properties.get("AuthorizerType")
        subject = f"{api_kind} API {model.display_name(api_logical_id)} authorizer {shown}"
        sources = properties.get("IdentitySource") or []
        sources = [sources] if isinstance(sources, str) else [str(source) for source in sources]
        if protocol == "HTTP" and kind == "JWT":
            jwt_config = properties.get("JwtConfiguration") or {}
            if not sources:
                sources = ["$request.header.Authorization"]
            if len(sources) != 1 or not _JWT_IDENTITY_SOURCE.fullmatch(sources[0]):
                model.unsupported(
                    subject,
                    f"IdentitySource {sources} is not emulated: its routes are not authorized locally",
                )
                continue
            if "Issuer" not in jwt_config:
                model.unsupported(
                    subject, "JwtConfiguration has no Issuer: its routes are not authorized locally"
                )
                continue
            result[logical_id] = model.jwt_authorizers[logical_id] = JwtAuthorizerSpec(
                logical_id=logical_id,
                display_name=shown,
                identity_source=sources[0],
                issuer=jwt_config["Issuer"],
                audience=jwt_config.get("Audience", []),
            )
        elif protocol == "WEBSOCKET" and kind == "REQUEST":
            functions = [
                lid
                for lid in referenced_logical_ids(properties.get("AuthorizerUri"))
                if lid in model.functions
            ]
            if not functions:
                model.unsupported(subject, "its function is not in this template: every $connect answers 500")
            unknown = [source for source in sources if not _REQUEST_IDENTITY_SOURCE.fullmatch(source)]
            if unknown:
                model.unsupported(
                    subject,
                    f"IdentitySource {unknown}: not understood, so never missing (no 401 without a call)",
                )
            result[logical_id] = model.request_authorizers[logical_id] = RequestAuthorizerSpec(
                logical_id=logical_id,
                display_name=shown,
                function_id=functions[0] if functions else None,
                identity_sources=tuple(s for s in sources if s not in unknown),
            )
            if functions:
                model.note(
                    FindingKind.SATISFIED,
                    subject,
                    f"run on $connect like API Gateway does (function {model.display_name(functions[0])}, "
                    f"identity sources {', '.join(sources) or '-'}): 401/403/500 refuse the handshake, "
                    "its context reaches every event of the connection",
                )
            _note_request_authorizer(model, subject, properties)
        else:
            model.unsupported(
                subject,
                f"AuthorizerType {kind} on a{'' if protocol == 'WEBSOCKET' else 'n'} {api_kind} API is not "
                "run: the routes that use it are not authorized locally",
            )
    return result


def _note_request_authorizer(model: StackModel, subject: str, properties: dict[str, Any]) -> None:
    ttl = properties.get("AuthorizerResultTtlInSeconds")
    if ttl:
        model.approximated(
            subject,
            f"AuthorizerResultTtlInSeconds {ttl}: results are not cached, "
            "the function runs on every $connect",
        )
    if properties.get("IdentityValidationExpression"):
        model.unsupported(subject, "IdentityValidationExpression is not applied")
    if properties.get("AuthorizerCredentialsArn"):
        model.note(
            FindingKind.NOT_EMULATED, subject, "AuthorizerCredentialsArn (IAM is not enforced locally)"
        )


def _route_auth(
    model: StackModel, route: dict[str, Any], subject: str, authorizers: Mapping[str, Authorizer]
) -> tuple[Authorizer | None, tuple[str, ...]]:
    """The authorizer a route runs locally (None: none, or one that cannot run, reported)."""
    auth = route.get("AuthorizationType") or "NONE"
    if auth == "NONE":
        return None, ()
    wanted = {"JWT": JwtAuthorizerSpec, "CUSTOM": RequestAuthorizerSpec}.get(str(auth))
    if wanted is None:
        model.unsupported(subject, f"AuthorizationType {auth}: not enforced locally")
        return None, ()
    referenced = list(referenced_logical_ids(route.get("AuthorizerId")))
    spec = next((authorizers[lid] for lid in referenced if lid in authorizers), None)
    if spec is None:
        known = any(model.resources.get(lid, {}).get("Type") == AUTHORIZER_TYPE for lid in referenced)
        model.unsupported(
            subject,
            f"AuthorizationType {auth}: "
            + ("its authorizer is not run" if known else "AuthorizerId is not an authorizer of this API")
            + ", so requests are not authorized locally",
        )
        return None, ()
    if not isinstance(spec, wanted):
        model.unsupported(
            subject,
            f"AuthorizationType {auth} with authorizer {spec.display_name} of another type: not authorized",
        )
        return None, ()
    scopes = tuple(str(scope) for scope in route.get("AuthorizationScopes") or [])
    return spec, scopes


def _read_http_api(
    model: StackModel,
    logical_id: str,
    properties: dict[str, Any],
    stage_name: str,
    authorizers: Mapping[str, Authorizer],
) -> None:
    shown = model.display_name(logical_id)
    routes = []
    for route_id in _children(model, ROUTE_TYPE, logical_id):
        route = model.resources[route_id].get("Properties", {})
        route_key = str(route.get("RouteKey"))
        subject = f"HTTP API {shown} route {route_key}"
        authorizer, scopes = _route_auth(model, route, subject, authorizers)
        function_id, version = _route_function(
            model, route_id, subject, "route has no integration: answers 404 as on AWS"
        )
        if function_id and version != "2.0":
            model.unsupported(subject, f"payload format {version}: local API speaks 2.0")
        jwt = authorizer if isinstance(authorizer, JwtAuthorizerSpec) else None
        routes.append(HttpRouteSpec(route_key, function_id, authorizer=jwt, authorization_scopes=scopes))
    cors = properties.get("CorsConfiguration")
    model.http_apis.append(
        HttpApiSpec(
            logical_id=logical_id,
            display_name=shown,
            api_id=api_id_for(model.stack_name, logical_id),
            routes=routes,
            cors=CorsConfig.from_template(cors) if cors else None,
            stage_name=stage_name,
        )
    )
    for key in ("Body", "BodyS3Location", "DisableExecuteApiEndpoint"):
        if key in properties:
            model.unsupported(f"HTTP API {shown}", f"{key} is not emulated")


def _read_websocket_api(
    model: StackModel,
    logical_id: str,
    properties: dict[str, Any],
    stage_name: str,
    authorizers: Mapping[str, Authorizer],
    *,
    stage_variables: dict[str, str],
) -> None:
    shown = model.display_name(logical_id)
    expression = str(properties.get("RouteSelectionExpression", "$request.body.action"))
    if not re.fullmatch(r"\$request\.body(\.[A-Za-z0-9_-]+)+", expression):
        model.unsupported(
            f"WebSocket API {shown}",
            f"RouteSelectionExpression {expression!r}: every message goes to $default",
        )
    two_way = {
        lid
        for response_id in _children(model, ROUTE_RESPONSE_TYPE, logical_id)
        for lid in referenced_logical_ids(model.resources[response_id].get("Properties", {}).get("RouteId"))
    }
    routes: dict[str, WebSocketRouteSpec] = {}
    for route_id in _children(model, ROUTE_TYPE, logical_id):
        route = model.resources[route_id].get("Properties", {})
        route_key = str(route.get("RouteKey"))
        subject = f"WebSocket API {shown} route {route_key}"
        authorizer, scopes = _route_auth(model, route, subject, authorizers)
        if authorizer is not None and route_key != "$connect":
            model.unsupported(subject, "an authorizer runs on $connect only: not run here")
            authorizer = None
        if scopes:
            model.unsupported(subject, "AuthorizationScopes are not applied")
        if route.get("ApiKeyRequired"):
            model.unsupported(subject, "ApiKeyRequired: API keys are not checked locally")
        function_id, _ = _route_function(model, route_id, subject, "route has no integration")
        is_two_way = route_id in two_way or "RouteResponseSelectionExpression" in route
        routes[route_key] = WebSocketRouteSpec(
            route_key,
            function_id,
            is_two_way,
            authorizer=authorizer if isinstance(authorizer, RequestAuthorizerSpec) else None,
        )
        for key in ("RequestModels", "RequestParameters", "ModelSelectionExpression"):
            if key in route:
                model.unsupported(subject, f"{key} (request validation) is not emulated")
    model.websocket_apis.append(
        WebSocketApiSpec(
            logical_id=logical_id,
            display_name=shown,
            api_id=api_id_for(model.stack_name, logical_id),
            route_selection_expression=expression,
            routes=routes,
            stage_name=stage_name,
            stage_variables=stage_variables,
        )
    )
