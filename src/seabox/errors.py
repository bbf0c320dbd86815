"""The one error hierarchy of Seabox; each error carries the HTTP status it maps to."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class SeaboxError(Exception):
    """Base of every error Seabox raises on purpose."""

    status = 500

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_json(self) -> dict[str, str | int]:
        body: dict[str, str | int] = {"message": self.message}
        if self.field:
            body["field"] = self.field
        return body

    def headers(self) -> dict[str, str]:
        """HTTP headers the response must carry besides the JSON body (none by default)."""
        return {}


class InvalidArgument(SeaboxError):
    """The request is malformed or names an impossible value (400)."""

    status = 400


class Unauthorized(SeaboxError):
    """No credential, or one that matches no tenant (401)."""

    status = 401


class PaymentRequired(SeaboxError):
    """The tenant's monthly spend limit is reached: nothing new is created until the operator raises it (402)."""

    status = 402


class Forbidden(SeaboxError):
    """A valid credential that may not do this (403)."""

    status = 403


class QuotaExceeded(Forbidden):
    """The request would take the tenant past one of its quotas (403 naming the quota, its limit and the use)."""

    def __init__(self, quota: str, limit: int, used: int, remedy: str) -> None:
        super().__init__(f"{quota} quota of {limit} reached: {used} in use; {remedy} or ask the operator for more",
                         field=quota)
        self.quota = quota
        self.limit = limit
        self.used = used

    def to_json(self) -> dict[str, str | int]:
        return {**super().to_json(), "quota": self.quota, "limit": self.limit, "used": self.used}


class NotFound(SeaboxError):
    """No such resource visible to this tenant (404)."""

    status = 404


class Conflict(SeaboxError):
    """The request clashes with the current state: a name in use, a volume mounted (409)."""

    status = 409


class AddressInUse(Conflict):
    """A tenant address taken by another request between choosing it and recording it: choose another."""


class RequestTimeout(SeaboxError):
    """The client stalled while sending its request (408)."""

    status = 408


class PayloadTooLarge(SeaboxError):
    """The request body is over the configured cap (413)."""

    status = 413


class TooManyRequests(SeaboxError):
    """A rate limit was hit; Retry-After says when to come back (429)."""

    status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


class NotModified(SeaboxError):
    """The resource is already in the requested state (304, as Docker answers)."""

    status = 304


class NotImplementedYet(SeaboxError):
    """The endpoint or option exists in Docker's API but Seabox does not serve it (501)."""

    status = 501


class Unavailable(SeaboxError):
    """A service Seabox depends on, such as the database, cannot be reached (503)."""

    status = 503


class RuntimeFailure(SeaboxError):
    """A node-level tool (runc, conmon, skopeo, umoci, nft) failed (500)."""

    status = 500


class UpstreamError(SeaboxError):
    """A registry or other upstream refused or failed (502)."""

    status = 502


class CallTimeout(SeaboxError):
    """A function call did not answer within the function's timeout (504)."""

    status = 504


class ReplyTooLarge(SeaboxError):
    """A function's reply is over the 1 MiB a call may answer (509, as Hyper.sh answered)."""

    status = 509


def validation_error(exc: ValidationError) -> InvalidArgument:
    """The first problem pydantic found, as one readable sentence naming the field."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"] if p != "__root__") or None
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    elif err["type"] == "missing":
        msg = "field required"
    return InvalidArgument(f"{field}: {msg}" if field else msg, field=field)
