"""CORS preflights and response headers, as API Gateway HTTP APIs answer them."""

from local.gateways import cors
from local.gateways.cors import CorsConfig

CONFIG = CorsConfig.from_template(
    {
        "AllowOrigins": ["http://localhost:4200"],
        "AllowMethods": ["GET", "POST", "OPTIONS"],
        "AllowHeaders": ["Content-Type", "Authorization"],
        "ExposeHeaders": ["Location", "Link"],
        "MaxAge": 3600,
    }
)
PREFLIGHT = {"Origin": "http://localhost:4200", "Access-Control-Request-Method": "POST"}


def test_a_preflight_needs_options_origin_and_requested_method():
    assert cors.is_preflight("OPTIONS", PREFLIGHT)
    assert not cors.is_preflight("OPTIONS", {"Origin": "http://localhost:4200"})
    assert not cors.is_preflight("POST", PREFLIGHT)


def test_an_allowed_origin_gets_the_configured_headers_with_its_origin_echoed():
    assert cors.preflight_headers(CONFIG, PREFLIGHT) == {
        "access-control-allow-origin": "http://localhost:4200",
        "access-control-allow-methods": "GET,POST,OPTIONS",
        "access-control-allow-headers": "content-type,authorization",
        "access-control-expose-headers": "location,link",
        "access-control-max-age": "3600",
    }


def test_a_disallowed_origin_gets_no_cors_headers():
    assert cors.preflight_headers(CONFIG, {**PREFLIGHT, "Origin": "http://evil.example"}) == {}
    assert cors.response_headers(CONFIG, {"Origin": "http://evil.example"}) == {}


def test_responses_to_allowed_origins_carry_allow_origin_and_expose_headers():
    assert cors.response_headers(CONFIG, {"origin": "http://localhost:4200"}) == {
        "access-control-allow-origin": "http://localhost:4200",
        "access-control-expose-headers": "location,link",
    }
    assert cors.response_headers(CONFIG, {}) == {}


def test_wildcards_and_credentials():
    star = CorsConfig(allow_origins=("*",))
    assert star.allowed_origin("http://a.example") == "*"
    scheme = CorsConfig(allow_origins=("https://*",), allow_credentials=True)
    assert scheme.allowed_origin("https://app.example.com") == "https://app.example.com"
    assert scheme.allowed_origin("http://app.example.com") is None
    assert (
        cors.response_headers(scheme, {"Origin": "https://x.example"})["access-control-allow-credentials"]
        == "true"
    )
