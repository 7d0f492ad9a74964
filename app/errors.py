"""The exceptions of Truce, one class per kind of problem.

Each error carries what an RFC 9457 problem body needs: a human `detail` that names the bad field,
the `field` itself as a JSON-pointer-like path ("features/3/geometry/coordinates/0/5",
"properties/observed_at") and, in a batch, the `index` of the feature at fault. The HTTP layer maps
the classes to status codes and titles; nothing here knows about HTTP.
"""

from __future__ import annotations

from typing import ClassVar


class TruceError(Exception):
    """The base of every error that Truce raises on purpose."""

    title: ClassVar[str] = "Truce error"

    def __init__(self, message: str, *, field: str | None = None, index: int | None = None) -> None:
        self.message = message
        self.field = field or None
        self.index = index
        super().__init__(message)

    @property
    def detail(self) -> str:
        """The message prefixed with the field path, so that it reads on its own."""
        return f"{self.field}: {self.message}" if self.field else self.message

    def __str__(self) -> str:
        return self.detail

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, field={self.field!r}, index={self.index!r})"
        )


class InvalidInput(TruceError):
    """Input that cannot be accepted as it is; the base of the validation errors."""

    title = "Invalid input"


class InvalidGeoJSON(InvalidInput):
    """A payload that is not the GeoJSON object expected (wrong type, no features)."""

    title = "Invalid GeoJSON"


class InvalidGeometry(InvalidInput):
    """A geometry that is malformed, out of range or invalid (self-intersecting, empty)."""

    title = "Invalid geometry"


class InvalidZone(InvalidInput):
    """A zone whose properties are missing, of the wrong type or inconsistent."""

    title = "Invalid zone"


class InvalidReport(InvalidInput):
    """A report whose properties are missing, of the wrong type or out of range."""

    title = "Invalid report"


class UnknownZone(TruceError):
    """A zone id that names no stored zone."""

    title = "Unknown zone"


class InvalidParameter(InvalidInput):
    """A query or path parameter that cannot be read (a bad time, bbox, limit or cursor)."""

    title = "Invalid parameter"


class UnknownQueryParameter(InvalidParameter):
    """A query parameter the route does not take (OGC API – Features: 400)."""

    title = "Unknown query parameter"
    #: The problem `type`: the OGC requirement it answers, rather than a Truce name.
    problem_type: ClassVar[str] = (
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/req/core/query-param-unknown"
    )


class InvalidJSON(InvalidInput):
    """A request body that is not JSON at all (a syntax error, NaN, bad UTF-8)."""

    title = "Invalid JSON"


class Unauthorized(TruceError):
    """No API key, or one that no configured or stored key matches."""

    title = "Unauthorized"


class Forbidden(TruceError):
    """A valid API key whose role does not allow the request."""

    title = "Forbidden"


class PayloadTooLarge(TruceError):
    """A request larger than the configured limits (bytes in the body, features in it)."""

    title = "Payload too large"


class UnsupportedMediaType(TruceError):
    """A request body in a media type or content coding that the API does not read."""

    title = "Unsupported media type"
