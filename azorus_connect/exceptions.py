"""Every error the hub raises, ordered by what the engine should do with it.

    AzorusError                      message for the user, detail for the log
    ├── FatalError                   stop: nothing sensible can continue
    │   ├── ConfigError              the config file is wrong (names file, key, problem)
    │   └── PluginError              a plugin failed to load or broke its contract
    ├── RetryableError               try again later (backoff, Retry-After)
    │   ├── ExternalUnavailable      timeout, connection refused, 5xx, 503 from us
    │   └── RateLimited              429 with Retry-After
    ├── PermanentExternalError       the external system refused it for good (4xx): park it
    └── RecordError                  skip this record / reject this request; others go on
        ├── PayloadError             the bytes are not what we accept
        │   ├── MalformedPayload     400: not XML, no EXCHANGE, broken CSV
        │   ├── PayloadTooLarge      413
        │   └── UnsupportedMediaType 415
        ├── NotAuthenticated         401
        ├── Forbidden                403
        ├── UnknownConnection        404
        ├── EntityNotMapped          406: the connection has no mapping for that entity
        ├── IdentityConflict         409: identifiers match two different people
        └── InvalidRecord            422: well-formed but invalid (bad date, unknown code)

``http_status`` is what an inbound request answers when the error ends it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AzorusError",
    "ConfigError",
    "EntityNotMapped",
    "ExternalUnavailable",
    "FatalError",
    "Forbidden",
    "IdentityConflict",
    "InvalidRecord",
    "MalformedPayload",
    "NotAuthenticated",
    "PayloadError",
    "PayloadTooLarge",
    "PermanentExternalError",
    "PluginError",
    "RateLimited",
    "RecordError",
    "RetryableError",
    "UnknownConnection",
    "UnsupportedMediaType",
]


class AzorusError(Exception):
    """Base of every hub error: ``message`` is for people, ``detail`` is for the log."""

    http_status = 500
    #: Whose problem it is: "configuration", "external" or "data".
    owner = "data"

    def __init__(self, message: str, *, detail: str | None = None, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.context = context

    def __str__(self) -> str:
        return self.message


class FatalError(AzorusError):
    owner = "configuration"


class ConfigError(FatalError):
    """The configuration is wrong; the message names the file, the key and the problem."""

    def __init__(self, problem: str, *, file: str | None = None, key: str | None = None) -> None:
        where = ": ".join(part for part in (file, key) if part)
        super().__init__(f"{where}: {problem}" if where else problem, file=file, key=key)
        self.file = file
        self.key = key
        self.problem = problem


class PluginError(FatalError):
    """A plugin could not be loaded or broke its contract."""


class RetryableError(AzorusError):
    """Worth trying again later."""

    http_status = 503
    owner = "external"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ExternalUnavailable(RetryableError):
    """Timeout, refused connection, 5xx: the other system is down for now."""


class RateLimited(RetryableError):
    """429 from the other system; ``retry_after`` is its Retry-After in seconds."""


class PermanentExternalError(AzorusError):
    """The other system refused the message for good; it is parked for a person to look at."""

    owner = "external"
    http_status = 502


class RecordError(AzorusError):
    """This record (or request) is rejected; other records and requests carry on."""

    http_status = 422


class PayloadError(RecordError):
    http_status = 400


class MalformedPayload(PayloadError):
    http_status = 400


class PayloadTooLarge(PayloadError):
    http_status = 413


class UnsupportedMediaType(PayloadError):
    http_status = 415


class NotAuthenticated(RecordError):
    http_status = 401
    owner = "configuration"


class Forbidden(RecordError):
    http_status = 403
    owner = "configuration"


class UnknownConnection(RecordError):
    http_status = 404
    owner = "configuration"


class EntityNotMapped(RecordError):
    http_status = 406
    owner = "configuration"


class IdentityConflict(RecordError):
    """The record's identifiers point at two different people; nothing is merged."""

    http_status = 409

    def __init__(self, message: str, *, person_ids: list[int] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.person_ids = person_ids or []


class InvalidRecord(RecordError):
    http_status = 422
