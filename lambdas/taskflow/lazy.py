"""`Lazy`: a value built on first use (a client, a service), replaceable in tests.

Handlers keep their dependencies in `Lazy` holders so that importing a handler module creates
no boto3 client and reads no environment; the first invocation builds them once per cold start.
Tests call `.override(fake)` and `reset_all()`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

_registry: list[Lazy[object]] = []


class Lazy(Generic[T]):
    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._value: T | None = None
        self._built = False
        self._lock = threading.Lock()
        _registry.append(self)  # type: ignore[arg-type]

    def get(self) -> T:
        if not self._built:
            with self._lock:
                if not self._built:
                    self._value = self._factory()
                    self._built = True
        return self._value  # type: ignore[return-value]

    def override(self, value: T) -> None:
        with self._lock:
            self._value = value
            self._built = True

    def reset(self) -> None:
        with self._lock:
            self._value = None
            self._built = False


def reset_all() -> None:
    """Forget every built value (tests: a fresh "cold start" per test)."""
    for holder in _registry:
        holder.reset()
