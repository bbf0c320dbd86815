"""Errors across the node protocol: a SeaboxError becomes a WireError on one side and the same error on the other."""

from __future__ import annotations

from seabox import errors
from seabox.protocol.wire import WireError

_KINDS: dict[str, type[errors.SeaboxError]] = {
    cls.__name__: cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, errors.SeaboxError)
    and cls not in (errors.SeaboxError, errors.TooManyRequests)
}


def to_wire(exc: errors.SeaboxError) -> WireError:
    return WireError(message=exc.message, field=exc.field, kind=type(exc).__name__)


def error_from(status: int, wire: WireError) -> errors.SeaboxError:
    """The SeaboxError the other side raised (by kind, else by HTTP status)."""
    cls = _KINDS.get(wire.kind or "")
    if cls is None:
        cls = next((k for k in _KINDS.values() if k.status == status), errors.UpstreamError)
    return cls(wire.message, field=wire.field)
