"""The benchmark every walk-forward is compared with: the equal-weight universe.

It is run through the cache like any strategy, over the optimization's data and settings,
and its key is kept in the manifest, so the comparison table reads it back.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from foldwise.data import MarketData
from foldwise.strategy import strategy

__all__ = ["equal_weight_universe"]


@strategy
def equal_weight_universe(data: MarketData) -> pd.DataFrame:
    """Hold every asset that has a close in equal weights (``1 / n`` of equity each).

    With one asset this is buy and hold. Weights are constant fractions of equity (the
    backtest rebalances to them at every close), so after the first bar it trades only when
    an asset gains or loses its price.
    """
    has_price = ~np.isnan(data.array("close"))
    counts = has_price.sum(axis=1, keepdims=True)
    weights = np.divide(has_price, counts, out=np.zeros(has_price.shape), where=counts > 0)
    return pd.DataFrame(weights, index=data.index, columns=data.assets, copy=False)
