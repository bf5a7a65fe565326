"""Datasets and columns, importable as in Zipline (``from ... .data import EquityPricing``)."""

from foldwise.pipeline._dataset import BoundColumn, Column, DataSet, EquityPricing, USEquityPricing

__all__ = ["BoundColumn", "Column", "DataSet", "EquityPricing", "USEquityPricing"]
