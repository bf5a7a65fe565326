"""The splitters inside scikit-learn's model selection tools."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, cross_val_score, cross_validate

from foldwise.splits import PurgedKFold, WalkForward


@pytest.fixture(scope="module")
def regression():
    rng = np.random.default_rng(0)
    dates = pd.bdate_range("2015-01-01", periods=600)
    X = pd.DataFrame(rng.normal(size=(600, 3)), index=dates, columns=["a", "b", "c"])
    y = X @ np.array([1.0, -0.5, 0.2]) + rng.normal(scale=0.1, size=600)
    return X, y


@pytest.mark.parametrize("cv", [
    WalkForward(200, 100, purge=3),
    WalkForward("1Y", "3M", purge="1W"),
    PurgedKFold(5, purge=3, embargo=0.01),
])
def test_cross_val_score(cv, regression):
    X, y = regression
    scores = cross_val_score(Ridge(), X, y, cv=cv)
    assert len(scores) == cv.get_n_splits(X) >= 3
    assert np.all(scores > 0.9)


def test_cross_validate_uses_the_folds_of_split(regression):
    X, y = regression
    cv = WalkForward(200, 100, purge=3)
    result = cross_validate(Ridge(), X, y, cv=cv, return_indices=True)
    expected = list(cv.split(X))
    for train, (ours_train, _) in zip(result["indices"]["train"], expected, strict=True):
        assert np.array_equal(train, ours_train)


def test_grid_search(regression):
    X, y = regression
    cv = PurgedKFold(4, purge=2, embargo=2)
    search = GridSearchCV(Ridge(), {"alpha": [0.01, 1.0, 1000.0]}, cv=cv)
    search.fit(X.to_numpy(), y.to_numpy())
    assert search.n_splits_ == 4
    assert search.best_params_["alpha"] in (0.01, 1.0)
    assert len(search.cv_results_["split3_test_score"]) == 3
