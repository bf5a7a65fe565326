"""The backtest settings an optimization runs with (everything that changes a result)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from foldwise.backtest import Costs
from foldwise.errors import BacktestError
from foldwise.metrics import DEFAULT_PERIODS_PER_YEAR

__all__ = ["RunSettings"]


@dataclass(frozen=True)
class RunSettings:
    """Costs, execution delay, price field, missing-price policy and annualization."""

    costs: Costs = field(default_factory=Costs)
    delay: int = 0
    price_field: str = "close"
    missing: str = "zero"
    periods_per_year: float = DEFAULT_PERIODS_PER_YEAR

    @classmethod
    def build(cls, costs: Costs | Mapping[str, float] | float | None, delay: int,
              price_field: str, missing: str, periods_per_year: float) -> RunSettings:
        if missing not in ("zero", "raise"):
            raise BacktestError(f"missing must be 'zero' or 'raise', got {missing!r}.")
        return cls(Costs.coerce(costs), int(delay), price_field, missing, float(periods_per_year))

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`foldwise.backtest` and of the cache's methods."""
        return {"costs": self.costs, "delay": self.delay, "price_field": self.price_field,
                "missing": self.missing, "periods_per_year": self.periods_per_year}

    def describe(self) -> dict[str, Any]:
        return {**self.as_kwargs(), "costs": self.costs.to_dict()}
