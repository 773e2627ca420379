"""The one place secrets are kept and redacted.

A :class:`Secret` holds a value read from an environment variable or a file; its ``repr``, ``str``
and JSON form are a fixed mask, so nothing can log it by accident.  :func:`redact_headers` masks
the credentials of an HTTP request before it reaches the request log.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

__all__ = ["MASK", "SENSITIVE_HEADERS", "Secret", "redact_headers"]

MASK = "********"

#: Request headers that always carry credentials.
SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "pswd",
        "password",
        "x-api-key",
        "x-csrf-token",
        "api-key",
        "x-auth-token",
    }
)


class Secret:
    """A secret value given by reference: ``{ env = "NAME" }`` or ``{ file = "path" }``."""

    __slots__ = ("_source", "_value")

    def __init__(self, value: str, source: str = "value") -> None:
        self._value = value
        self._source = source

    def reveal(self) -> str:
        """The secret itself: pass it straight to the call that needs it, never to a log."""
        return self._value

    @property
    def source(self) -> str:
        """Where it came from (``env:NAME`` or ``file:path``): safe to show."""
        return self._source

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:  # pragma: no cover - guard, not behaviour
        raise TypeError("a Secret cannot be pickled")

    @classmethod
    def from_reference(cls, ref: Any, *, base_dir: Path | None = None) -> Secret:
        """Resolve ``{env = NAME}`` or ``{file = path}``; a literal string is refused."""
        if isinstance(ref, Secret):
            return ref
        if not isinstance(ref, Mapping) or len(ref) != 1 or not ({"env", "file"} & set(ref)):
            raise ValueError('secrets are given by reference only: { env = "NAME" } or { file = "path" }')
        if "env" in ref:
            name = str(ref["env"])
            if name not in os.environ:
                raise ValueError(f"environment variable {name} is not set")
            return cls(os.environ[name], f"env:{name}")
        path = Path(str(ref["file"]))
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            return cls(path.read_text(encoding="utf-8").strip(), f"file:{ref['file']}")
        except OSError as exc:
            raise ValueError(f"cannot read secret file {ref['file']}: {exc.strerror}") from None

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def validate(value: Any, info: core_schema.ValidationInfo) -> Secret:
            base = (info.context or {}).get("base_dir") if info.context else None
            return cls.from_reference(value, base_dir=base)

        return core_schema.with_info_plain_validator_function(
            validate,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda s: MASK),
        )


def redact_headers(headers: Iterable[tuple[str, str]], extra: Iterable[str] = ()) -> dict[str, str]:
    """Headers as a dict with every credential replaced by the mask."""
    secret = SENSITIVE_HEADERS | {h.lower() for h in extra}
    out: dict[str, str] = {}
    for name, value in headers:
        out[name] = MASK if name.lower() in secret else value
    return out
