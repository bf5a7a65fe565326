"""Pipeline terms: memoization, immutability, identity across processes, construction errors."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys

import numpy as np
import pytest

from foldwise.errors import (
    NonWindowSafeInputError,
    PipelineDefinitionError,
    PipelineError,
    UnknownColumnError,
)
from foldwise.pipeline import (
    BoundColumn,
    Column,
    CustomClassifier,
    CustomFactor,
    CustomFilter,
    DataSet,
    EquityPricing,
    Pipeline,
)
from foldwise.pipeline.data import USEquityPricing
from foldwise.pipeline.factors import (
    EWMA,
    BollingerBands,
    Latest,
    Returns,
    SimpleMovingAverage,
)


class Reversion(CustomFactor):
    inputs = [EquityPricing.close]
    window_length = 60

    def compute(self, today, assets, out, prices):
        out[:] = -prices[-1] / np.mean(prices, axis=0)


class Scaled(CustomFactor):
    inputs = [EquityPricing.close]
    window_length = 3
    params = {"scale": 1.0, "offset": 0.0}

    def compute(self, today, assets, out, closes, scale, offset):
        out[:] = closes[-1] * scale + offset


# --- memoization and immutability ----------------------------------------------------------


def test_same_arguments_give_the_same_object():
    assert SimpleMovingAverage(inputs=[EquityPricing.close], window_length=5) is \
        SimpleMovingAverage(inputs=(EquityPricing.close,), window_length=5)
    assert Reversion() is Reversion(window_length=60)
    assert Returns(window_length=20).zscore() is Returns(window_length=20).zscore()
    assert (Reversion() + 1) is (Reversion() + 1)
    assert Returns(20) is Returns(window_length=20)  # an int first argument is the window


def test_different_arguments_give_different_objects():
    assert Reversion() is not Reversion(window_length=30)
    assert Scaled(scale=2.0) is not Scaled(scale=3.0)
    assert Returns(window_length=20).rank() is not Returns(window_length=20).rank(ascending=False)


def test_identity_is_type_exact_for_params():
    assert Scaled(scale=2) is not Scaled(scale=2.0)
    assert Scaled(scale=math.nan) is Scaled(scale=math.nan)


def test_terms_are_immutable():
    term = Reversion()
    with pytest.raises(AttributeError, match="immutable"):
        term.window_length = 10
    with pytest.raises(AttributeError, match="immutable"):
        del term.inputs


def test_pickle_returns_the_memoized_term():
    term = (Returns(window_length=5).zscore() + Reversion()).rank()
    assert pickle.loads(pickle.dumps(term)) is term
    assert pickle.loads(pickle.dumps(EquityPricing.close)) is EquityPricing.close


# --- fingerprints --------------------------------------------------------------------------


def test_fingerprint_depends_on_arguments_and_code():
    assert Scaled(scale=2.0).__fingerprint__() != Scaled(scale=3.0).__fingerprint__()
    assert Scaled(scale=2).__fingerprint__() != Scaled(scale=2.0).__fingerprint__()
    assert Reversion().__fingerprint__() != Reversion(window_length=61).__fingerprint__()

    class Reversion2(CustomFactor):  # same arguments, different code
        inputs = [EquityPricing.close]
        window_length = 60

        def compute(self, today, assets, out, prices):
            out[:] = prices[-1] / np.mean(prices, axis=0)

    assert Reversion2().__fingerprint__() != Reversion().__fingerprint__()


@pytest.mark.slow  # a fresh interpreter per check: seconds
def test_fingerprint_is_the_same_in_another_process():
    code = ("from foldwise.pipeline.factors import Returns, BollingerBands;"
            "t = (Returns(window_length=20).zscore() - BollingerBands(window_length=20, k=2).upper)"
            ".rank(ascending=False); print(t.__fingerprint__())")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.strip()
    term = (Returns(window_length=20).zscore()
            - BollingerBands(window_length=20, k=2).upper).rank(ascending=False)
    assert other == term.__fingerprint__()


# --- datasets ------------------------------------------------------------------------------


def test_equity_pricing_columns_are_bound_terms():
    assert isinstance(EquityPricing.close, BoundColumn)
    assert EquityPricing.close is EquityPricing.close
    assert USEquityPricing.close is EquityPricing.close
    assert [c.name for c in EquityPricing.columns] == ["open", "high", "low", "close", "volume"]
    assert isinstance(EquityPricing.close.latest, Latest)
    assert repr(EquityPricing.close.latest) == "EquityPricing.close.latest"


def test_user_dataset_columns_by_dtype():
    class Fundamentals(DataSet):
        earnings_yield = Column(float)
        sector = Column(int)
        listed = Column(bool)
        adjusted = Column(float, field="adj_close")

    assert Fundamentals.earnings_yield.field == "earnings_yield"
    assert Fundamentals.adjusted.field == "adj_close"
    assert Fundamentals.sector.latest.kind == "classifier"
    assert Fundamentals.listed.latest.kind == "filter"
    assert Fundamentals.earnings_yield.latest.kind == "factor"
    assert Fundamentals.sector.missing_value == -1


# --- construction errors -------------------------------------------------------------------


def test_missing_inputs_or_window_length_are_named():
    class NoInputs(CustomFactor):
        window_length = 3

        def compute(self, today, assets, out, x):
            out[:] = x[-1]

    with pytest.raises(PipelineDefinitionError, match="NoInputs needs inputs"):
        NoInputs()
    with pytest.raises(PipelineDefinitionError, match="SimpleMovingAverage needs a window_length"):
        SimpleMovingAverage(inputs=[EquityPricing.close])


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_bad_window_length_is_refused(bad):
    with pytest.raises(PipelineDefinitionError, match="window_length"):
        Reversion(window_length=bad)


def test_returns_needs_two_bars():
    with pytest.raises(PipelineDefinitionError, match="at least 2"):
        Returns(window_length=1)


def test_unknown_and_missing_params():
    with pytest.raises(PipelineDefinitionError, match="Did you mean 'scale'"):
        Scaled(scael=2.0)
    with pytest.raises(PipelineDefinitionError, match="needs a value for its param 'decay_rate'"):
        EWMA(inputs=[EquityPricing.close], window_length=10)
    with pytest.raises(PipelineDefinitionError, match="decay_rate must be a number in"):
        EWMA(inputs=[EquityPricing.close], window_length=10, decay_rate=1.5)
    with pytest.raises(PipelineDefinitionError, match="hashable"):
        Scaled(scale=np.array([1.0, 2.0]))


def test_non_window_safe_input_to_windowed_factor():
    with pytest.raises(NonWindowSafeInputError, match=r"Reversion\(window_length=60\).*not window-safe") as info:
        SimpleMovingAverage(inputs=[Reversion()], window_length=10)
    assert "window_safe = True" in str(info.value)
    with pytest.raises(NonWindowSafeInputError):
        SimpleMovingAverage(inputs=[EquityPricing.close.latest], window_length=10)
    # Window-safe inputs are accepted: columns, returns, ranks, zscores, filters.
    SimpleMovingAverage(inputs=[Returns(window_length=2)], window_length=10)
    SimpleMovingAverage(inputs=[Reversion().zscore()], window_length=10)
    SimpleMovingAverage(inputs=[Reversion().rank()], window_length=10)
    # A window of one bar never mixes dates.
    SimpleMovingAverage(inputs=[Reversion()], window_length=1)


def test_inputs_must_be_terms_and_outputs_names():
    with pytest.raises(PipelineDefinitionError, match="must be a pipeline term"):
        Reversion(inputs=["close"])
    with pytest.raises(PipelineDefinitionError, match="outputs must be"):
        Reversion(outputs=["window_length"])
    with pytest.raises(PipelineDefinitionError, match="several outputs"):
        SimpleMovingAverage(inputs=[BollingerBands(window_length=5, k=2)], window_length=3)


def test_custom_filter_and_classifier_dtypes():
    class Up(CustomFilter):
        inputs = [EquityPricing.close]
        window_length = 2

        def compute(self, today, assets, out, closes):
            out[:] = closes[-1] > closes[0]

    class Bucket(CustomClassifier):
        inputs = [EquityPricing.close]
        window_length = 1

        def compute(self, today, assets, out, closes):
            out[:] = (closes[-1] > 50).astype(int)

    assert Up().dtype == np.dtype(bool)
    assert Up().window_safe
    assert Bucket().dtype == np.dtype("int64")
    assert Bucket().missing_value == -1
    with pytest.raises(PipelineDefinitionError, match="Did you mean a CustomFilter"):
        Reversion(dtype=bool)


def test_algebra_refuses_bad_operands():
    with pytest.raises(PipelineDefinitionError, match="operands must be factors or numbers"):
        Reversion() + "1"
    with pytest.raises(PipelineDefinitionError, match="unknown rank method"):
        Reversion().rank(method="first")
    with pytest.raises(PipelineDefinitionError, match=r"0 <= min < max <= 100"):
        Reversion().percentile_between(50, 10)
    with pytest.raises(PipelineDefinitionError, match=r"0 <= min < max <= 1"):
        Reversion().winsorize(0.1, 1.5)
    with pytest.raises(PipelineDefinitionError, match="groupby must be a Classifier"):
        Reversion().zscore(groupby=Reversion())
    with pytest.raises(PipelineDefinitionError, match="mask must be a Filter"):
        Reversion().rank(mask=Reversion())
    with pytest.raises(PipelineDefinitionError, match="no order"):
        Reversion().quintiles() < 2  # noqa: B015
    with pytest.raises(PipelineDefinitionError, match="N must be an integer"):
        Reversion().top(0)


def test_filters_refuse_python_truth_values():
    price = EquityPricing.close.latest
    with pytest.raises(PipelineDefinitionError, match=r"combine filters with &, \| and ~"):
        bool(price > 1)
    with pytest.raises(PipelineDefinitionError):
        assert 0 < price < 5


def test_multiple_outputs_unpack_and_attributes():
    bands = BollingerBands(window_length=20, k=2.0)
    lower, middle, upper = bands
    assert (lower, middle, upper) == (bands.lower, bands.middle, bands.upper)
    with pytest.raises(AttributeError, match="Its outputs: lower, middle, upper"):
        bands.uper  # noqa: B018
    with pytest.raises(PipelineDefinitionError, match="single output"):
        list(Reversion())


# --- pipelines -----------------------------------------------------------------------------


def test_pipeline_add_remove_set_screen():
    pipe = Pipeline({"reversion": Reversion()})
    pipe.add(Returns(window_length=5), "momentum")
    assert list(pipe.columns) == ["reversion", "momentum"]
    with pytest.raises(PipelineDefinitionError, match="overwrite=True"):
        pipe.add(Returns(window_length=6), "momentum")
    pipe.add(Returns(window_length=6), "momentum", overwrite=True)
    assert pipe.columns["momentum"] is Returns(window_length=6)
    assert pipe.remove("momentum") is Returns(window_length=6)
    with pytest.raises(UnknownColumnError, match="no column 'momentum'"):
        pipe.remove("momentum")
    pipe.set_screen(Reversion().top(3))
    with pytest.raises(PipelineDefinitionError, match="already has a screen"):
        pipe.set_screen(Reversion().bottom(3))
    pipe.set_screen(Reversion().bottom(3), overwrite=True)
    assert pipe.screen is Reversion().bottom(3)


def test_pipeline_refuses_non_columns():
    with pytest.raises(PipelineDefinitionError, match=r"did you mean EquityPricing.close.latest"):
        Pipeline({"close": EquityPricing.close})
    with pytest.raises(PipelineDefinitionError, match="several outputs"):
        Pipeline({"bands": BollingerBands(window_length=5, k=1)})
    with pytest.raises(PipelineDefinitionError, match="one value per date"):
        Pipeline({"aapl": Returns(window_length=2)["AAPL"]})
    with pytest.raises(PipelineDefinitionError, match="screen must be a Filter"):
        Pipeline({"r": Reversion()}, screen=Reversion())
    assert issubclass(PipelineDefinitionError, PipelineError)
    assert issubclass(PipelineDefinitionError, TypeError)
    assert issubclass(PipelineError, ValueError)


def test_pipeline_fingerprint_covers_columns_and_screen():
    a = Pipeline({"r": Reversion()})
    b = Pipeline({"r": Reversion()}, screen=Reversion().top(2))
    c = Pipeline({"s": Reversion()})
    assert len({a.__fingerprint__(), b.__fingerprint__(), c.__fingerprint__()}) == 3
    assert a.__fingerprint__() == Pipeline({"r": Reversion()}).__fingerprint__()
