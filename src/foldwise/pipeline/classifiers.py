"""Classifiers, importable as in Zipline (``from ... .classifiers import CustomClassifier``)."""

from foldwise.pipeline._classifier import Classifier, Quantiles
from foldwise.pipeline._custom import CustomClassifier

__all__ = ["Classifier", "CustomClassifier", "Quantiles"]
