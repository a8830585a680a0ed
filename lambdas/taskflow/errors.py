"""Errors shared across layers that are not about the task domain itself."""

from __future__ import annotations


class DependencyUnavailableError(Exception):
    """An AWS dependency is down, throttling or unreachable; the caller may retry later.

    Raised by repositories and clients (translated from botocore errors) so that the layers
    above never import botocore; the HTTP API maps it to 503 with Retry-After.
    """

    def __init__(self, dependency: str, detail: str) -> None:
        super().__init__(f"{dependency} is unavailable: {detail}")
        self.dependency = dependency
        self.detail = detail


class InvalidCursorError(ValueError):
    """A pagination cursor that this API did not issue (or for another listing)."""


class UnauthenticatedError(Exception):
    """The request carries no verified caller where one is required (stages with `auth: jwt`: no
    usable `sub` claim from the JWT authorizer). The HTTP API answers 401: it fails closed rather
    than serve a request it cannot attribute to an owner."""
