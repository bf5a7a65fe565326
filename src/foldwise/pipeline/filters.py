"""Filters, importable as in Zipline (``from ... .filters import CustomFilter``)."""

from foldwise.pipeline._custom import CustomFilter
from foldwise.pipeline._filter import Filter, PercentileFilter, SingleAsset, StaticAssets

__all__ = ["CustomFilter", "Filter", "PercentileFilter", "SingleAsset", "StaticAssets"]
