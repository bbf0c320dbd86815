"""The price book: what each meter costs, Hyper.sh's table by default, and the versions an operator sets over time."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from seabox.errors import InvalidArgument
from seabox.model.sizes import SIZES

SECONDS_PER_MONTH = 30 * 86400  # the month of a per-GB-month price (storage); FIPs bill by calendar month
MAX_PRICE = Decimal(1000)  # dollars per unit: a bound on what an operator's typo can bill

# Hyper.sh's table: container sizes per running second, storage per GB-month, a FIP per calendar month
# (or part of one), a service per second.
DEFAULT_PRICES: dict[str, Decimal] = {
    **{f"container.{name}": Decimal(p) for name, p in zip(SIZES, (
        "0.0000004", "0.0000008", "0.0000015", "0.000003", "0.000006", "0.000012", "0.000024",
        "0.00003", "0.00006", "0.00012",
    ), strict=True)},
    "storage": Decimal("0.10"),
    "fip": Decimal("1"),
    "service": Decimal("0.000003"),
}
UNITS: dict[str, str] = {**{key: "second" for key in DEFAULT_PRICES}, "storage": "GB-month", "fip": "month"}


def parse_price(key: str, value: str | float | int) -> Decimal:
    """VALUE as the price of meter KEY (a 400 naming the key for an unknown meter, a non-number or a negative)."""
    if key not in DEFAULT_PRICES:
        raise InvalidArgument(f"unknown price {key!r}: use one of {', '.join(DEFAULT_PRICES)}", field=key)
    if isinstance(value, bool):
        raise InvalidArgument(f"price {key} must be a number of dollars, not {value!r}", field=key)
    if isinstance(value, float):
        value = repr(value)
    try:
        price = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise InvalidArgument(f"price {key} must be a number of dollars, not {value!r}", field=key) from None
    if not price.is_finite() or not 0 <= price <= MAX_PRICE:
        raise InvalidArgument(f"price {key} must be between 0 and {MAX_PRICE} dollars, not {value}", field=key)
    return price


def price_text(price: Decimal) -> str:
    """A price as plain decimal text, never in exponent form: 0.0000004, not 4E-7."""
    return f"{price:f}"


@dataclass(frozen=True)
class PriceBook:
    """One version of the book: the prices in force from EFFECTIVE_AT (epoch seconds) until the next version's."""

    effective_at: float
    prices: dict[str, Decimal] = field(default_factory=lambda: dict(DEFAULT_PRICES))

    def with_changes(self, changes: dict[str, Decimal], effective_at: float) -> PriceBook:
        return PriceBook(effective_at, {**self.prices, **changes})


@dataclass(frozen=True)
class PriceHistory:
    """Every version in effective order; before the first, Hyper.sh's table."""

    versions: tuple[PriceBook, ...] = ()

    def at(self, when: float) -> PriceBook:
        book = PriceBook(0.0)
        for version in self.versions:
            if version.effective_at > when:
                break
            book = version
        return book

    def changes_between(self, start: float, end: float) -> list[float]:
        """The times in (START, END) at which a new version takes effect."""
        return [v.effective_at for v in self.versions if start < v.effective_at < end]
