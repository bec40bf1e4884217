"""The two parts of a training clip, context and future, and the pair type that carries one value
per part (autoencoder files, latent shapes...) by name instead of by position."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

ROLES = ("context", "future")

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class RolePair(Generic[T]):
    """One value for the context frames and one for the future frames."""

    context: T
    future: T

    def of(self, role: str) -> T:
        """The value of `role` ("context" or "future")."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        return self.context if role == "context" else self.future

    def map(self, fn: Callable[[T], U]) -> RolePair[U]:
        return RolePair(context=fn(self.context), future=fn(self.future))
