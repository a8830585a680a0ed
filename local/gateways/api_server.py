"""ApiServer: what both local gateways (HTTP API, WebSocket API) are built from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from local.console import Console
from local.runtime.pool import InvokeFunction

SpecT = TypeVar("SpecT")


@dataclass(eq=False)
class ApiServer(Generic[SpecT]):
    """One API of the template, served on 127.0.0.1: its spec, and the stack's functions its routes
    (and authorizers) invoke, shown on the console by name."""

    api: SpecT
    function_names: Mapping[str, str]  # function logical id -> the name the console shows
    invoke: InvokeFunction
    console: Console
    account_id: str
