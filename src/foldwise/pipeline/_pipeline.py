"""``Pipeline``: named columns and a screen, the unit :func:`run_pipeline` computes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from foldwise._hashing import hash_json
from foldwise.errors import PipelineDefinitionError, UnknownColumnError
from foldwise.pipeline._term import Term

__all__ = ["Pipeline"]


def _check_column(name: Any, term: Any) -> None:
    if not isinstance(name, str) or not name:
        raise PipelineDefinitionError(f"pipeline column names must be non-empty strings, got {name!r}.")
    if not isinstance(term, Term):
        raise PipelineDefinitionError(
            f"pipeline column {name!r} must be a factor, filter or classifier, got {term!r}.")
    if term.kind == "column":
        raise PipelineDefinitionError(
            f"pipeline column {name!r} is the dataset column {term!r}, not a computed term; "
            f"did you mean {term!r}.latest?")
    if term.outputs is not None:
        raise PipelineDefinitionError(
            f"pipeline column {name!r}: {term!r} has several outputs ({', '.join(term.outputs)}); "
            f"add one of them, e.g. {term!r}.{term.outputs[0]}.")
    if term.ndim != 2:
        raise PipelineDefinitionError(
            f"pipeline column {name!r}: {term!r} has one value per date, not one per asset; "
            "use it inside another term instead.")


def _check_screen(screen: Any) -> Term | None:
    if screen is None:
        return None
    if not (isinstance(screen, Term) and screen.kind == "filter"):
        raise PipelineDefinitionError(
            f"a pipeline screen must be a Filter (e.g. factor.top(10)), got {screen!r}.")
    if screen.ndim != 2:
        raise PipelineDefinitionError(
            f"the pipeline screen {screen!r} has one value per date, not one per asset. To "
            "keep every asset on the dates where it holds, combine it with a filter of the "
            f"assets, e.g. factor.notnull() & {screen!r}.")
    return screen


class Pipeline:
    """Named pipeline columns and an optional screen.

    Parameters
    ----------
    columns : dict of str to Factor, Filter or Classifier, optional
        The output columns, in order.
    screen : Filter, optional
        Rows (asset, date) where it is False are dropped from the output. A screen changes
        which rows are returned, never the values of the rows kept.

    Examples
    --------
    >>> from foldwise.pipeline import Pipeline
    >>> from foldwise.pipeline.factors import Returns
    >>> pipe = Pipeline({"momentum": Returns(window_length=20)})
    >>> pipe.add(Returns(window_length=60), "slow")
    >>> pipe.set_screen(pipe.columns["momentum"].top(5))
    >>> list(pipe.columns), pipe.remove("slow")
    (['momentum', 'slow'], Returns(window_length=60))
    """

    __slots__ = ("_columns", "_screen")

    def __init__(self, columns: Mapping[str, Term] | None = None, screen: Term | None = None,
                 ) -> None:
        if columns is not None and not isinstance(columns, Mapping):
            raise PipelineDefinitionError(
                f"Pipeline columns must be a dict of name to term, got {type(columns).__name__}.")
        self._columns: dict[str, Term] = {}
        for name, term in (columns or {}).items():
            _check_column(name, term)
            self._columns[name] = term
        self._screen = _check_screen(screen)

    @property
    def columns(self) -> dict[str, Term]:
        """The output columns (a copy; use :meth:`add` and :meth:`remove` to change them)."""
        return dict(self._columns)

    @property
    def screen(self) -> Term | None:
        """The screen filter, or None."""
        return self._screen

    def add(self, term: Term, name: str, overwrite: bool = False) -> None:
        """Add a column ``name`` computing ``term`` (replace an existing one only with
        ``overwrite=True``)."""
        _check_column(name, term)
        if name in self._columns and not overwrite:
            raise PipelineDefinitionError(
                f"the pipeline already has a column {name!r}; pass overwrite=True to replace it.")
        self._columns[name] = term

    def remove(self, name: str) -> Term:
        """Remove the column ``name`` and return its term."""
        try:
            return self._columns.pop(name)
        except KeyError:
            raise UnknownColumnError(
                f"the pipeline has no column {name!r} (columns: {list(self._columns)}).") from None

    def set_screen(self, screen: Term, overwrite: bool = False) -> None:
        """Set the screen (replace an existing one only with ``overwrite=True``)."""
        if self._screen is not None and not overwrite:
            raise PipelineDefinitionError(
                "the pipeline already has a screen; combine filters with & "
                "(set_screen(a & b)) or pass overwrite=True to replace it.")
        self._screen = _check_screen(screen)

    def __fingerprint__(self) -> str:
        """A stable identity of the columns, their order and the screen."""
        return hash_json({
            "columns": [[name, term.__fingerprint__()] for name, term in self._columns.items()],
            "screen": None if self._screen is None else self._screen.__fingerprint__(),
        })

    def __repr__(self) -> str:
        columns = ", ".join(f"{name!r}: {term!r}" for name, term in self._columns.items())
        screen = "" if self._screen is None else f", screen={self._screen!r}"
        return f"Pipeline({{{columns}}}{screen})"
