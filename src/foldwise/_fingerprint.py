"""Code fingerprints: a stable hash of a strategy's code and of the user code it uses.

A cache keyed only on the decorated function's own lines goes stale as soon as a helper it
calls is edited (joblib's ``Memory`` has this problem). The fingerprint here follows what the
code really references:

1. The root object (function, class or instance of a user class) contributes its source,
   normalised through the AST so that comments, blank lines, formatting and docstrings do
   not matter, but every token of logic does.
2. Every name the code can load — globals and attribute names of its code object and of
   every nested code object, closure cells, default argument values — is resolved. What it
   resolves to is followed when it is **user code**: a function or class defined in a
   module that is neither the standard library, nor installed under site-packages, nor
   foldwise itself (``foldwise.examples`` counts as user code). User modules referenced as
   ``helpers.f`` contribute the attributes named in the code.
3. Plain values the code reads from user modules or closures (numbers, strings, tuples,
   dicts, numpy arrays, pandas objects) contribute their canonical form, so changing a
   module-level constant changes the fingerprint. Objects may define
   ``__fingerprint__() -> str`` to say what identifies them; other library objects (a
   logger, a third-party model) are identified by their type only.

Objects whose source cannot be read (defined through ``exec``, in a C extension, in a
``python -c`` string) raise :class:`~foldwise.errors.FingerprintError`, whose message
suggests passing ``version=`` instead; with a version the fingerprint is the name plus that
version and the user owns invalidation.
"""

from __future__ import annotations

import ast
import functools
import inspect
import linecache
import logging
import sys
import sysconfig
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from foldwise._hashing import hash_arrays, hash_json
from foldwise.errors import FingerprintError

__all__ = ["code_fingerprint", "fingerprint_entries", "is_user_module"]

logger = logging.getLogger(__name__)

_FINGERPRINT_VERSION = 1
_MAX_DEPTH = 6

_LIBRARY_ROOTS = tuple(
    str(Path(p).resolve())
    for key in ("stdlib", "platstdlib", "purelib", "platlib")
    if (p := sysconfig.get_paths().get(key))
)


@functools.lru_cache(maxsize=4096)
def _is_user_module_name(name: str, file: str | None) -> bool:
    top = name.split(".")[0]
    if name == "__main__":
        return True
    if name == "foldwise.examples" or name.startswith("foldwise.examples."):
        return True
    if top == "foldwise" or top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return False
    if file is None:
        return False
    resolved = str(Path(file).resolve())
    return not any(resolved.startswith(root + "/") or resolved == root for root in _LIBRARY_ROOTS)


def is_user_module(module: types.ModuleType | str | None) -> bool:
    """True if ``module`` (or the module of that name) holds user code, not library code."""
    if isinstance(module, str):
        module = sys.modules.get(module)
    if module is None:
        return False
    return _is_user_module_name(module.__name__, getattr(module, "__file__", None))


def _defined_in_user_code(obj: Any) -> bool:
    name = getattr(obj, "__module__", None)
    if not isinstance(name, str):
        return False
    module = sys.modules.get(name)
    if module is not None:
        return is_user_module(module)
    # The module was removed from sys.modules (reloaded, or imported by path): judge by
    # the file the code comes from.
    code = getattr(inspect.unwrap(obj), "__code__", None) if callable(obj) else None
    file = code.co_filename if code is not None else None
    if file is None:
        try:
            file = inspect.getsourcefile(obj)
        except TypeError:
            file = None
    return _is_user_module_name(name, file)


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]


def _class_source_from_methods(cls: type) -> str | None:
    """The source of ``cls`` located through the code of a method defined in its body.

    A class defined in a notebook cell or an interactive session lives in ``__main__``,
    which has no file, so :func:`inspect.getsource` cannot find it; its methods' code
    still names the cell, whose text IPython keeps in :mod:`linecache`. None when no
    method defined in the class body leads to readable source.
    """
    for attribute in vars(cls).values():
        if isinstance(attribute, (staticmethod, classmethod)):
            attribute = attribute.__func__
        elif isinstance(attribute, property):
            attribute = attribute.fget
        code = getattr(inspect.unwrap(attribute), "__code__", None) if callable(attribute) else None
        if not isinstance(code, types.CodeType) or not code.co_qualname.startswith(
                cls.__qualname__ + "."):
            continue
        lines = linecache.getlines(code.co_filename)
        try:
            tree = ast.parse("".join(lines))
        except (SyntaxError, ValueError):
            continue
        enclosing = [node for node in ast.walk(tree)
                     if isinstance(node, ast.ClassDef) and node.name == cls.__name__
                     and node.end_lineno is not None
                     and node.lineno <= code.co_firstlineno <= node.end_lineno]
        if enclosing:
            node = max(enclosing, key=lambda n: n.lineno)  # the innermost
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            return "".join(lines[start - 1:node.end_lineno])
    return None


def _normalised_source(obj: Any, what: str) -> str:
    try:
        source = inspect.getsource(obj)
    except (OSError, TypeError) as exc:
        found = _class_source_from_methods(obj) if isinstance(obj, type) else None
        if found is None:
            raise _unreadable(what, exc) from exc
        source = found
    source = textwrap.dedent(source)
    try:
        tree = ast.parse(source)
    except SyntaxError:
        # A lambda's source is the line around it, which may not parse on its own.
        return "\n".join(line.rstrip() for line in source.strip().splitlines())
    _strip_docstrings(tree)
    return ast.dump(tree)


def _unreadable(what: str, exc: Exception) -> FingerprintError:
    return FingerprintError(
        f"cannot read the source code of {what} ({exc}), so changes to it cannot be "
        "detected. Define it in a .py file or a notebook cell, or pass version='...' to "
        "the strategy (and change the version whenever the code changes).")


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _qualname(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or type(obj).__module__
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}.{name}"


class _Collector:
    """Walks the graph of user code reachable from a root and records what identifies it."""

    def __init__(self) -> None:
        self.entries: dict[str, Any] = {}
        self._seen: set[int] = set()

    # -- objects of code ----------------------------------------------------------------

    def visit(self, obj: Any, depth: int = 0) -> None:
        if id(obj) in self._seen or depth > _MAX_DEPTH:
            return
        self._seen.add(id(obj))
        if isinstance(obj, functools.partial):
            self.visit(obj.func, depth + 1)
            self.entries[f"partial:{_qualname(obj.func)}:{id(obj)}"] = [
                self.value(a, depth + 1) for a in obj.args] + [
                {k: self.value(v, depth + 1) for k, v in sorted(obj.keywords.items())}]
            return
        if isinstance(obj, (staticmethod, classmethod)):
            self.visit(obj.__func__, depth)
            return
        if isinstance(obj, property):
            for accessor in (obj.fget, obj.fset, obj.fdel):
                if accessor is not None:
                    self.visit(accessor, depth)
            return
        if isinstance(obj, types.MethodType):
            self.visit(obj.__func__, depth)
            self.visit(obj.__self__, depth + 1)
            return
        if isinstance(obj, types.FunctionType):
            self._visit_function(obj, depth)
        elif isinstance(obj, type):
            self._visit_class(obj, depth)

    def _visit_function(self, func: types.FunctionType, depth: int) -> None:
        func = inspect.unwrap(func)
        name = _qualname(func)
        self.entries[f"code:{name}"] = _normalised_source(func, f"{name}()")
        names: set[str] = set()
        for code in _code_objects(func.__code__):
            names.update(code.co_names)
        global_values = func.__globals__
        for ref in sorted(names):
            if ref in global_values:
                self.reference(f"{func.__module__}.{ref}", global_values[ref], names, depth)
        if func.__closure__:
            for var, cell in zip(func.__code__.co_freevars, func.__closure__, strict=True):
                try:
                    value = cell.cell_contents
                except ValueError:  # an empty cell (variable not yet assigned)
                    continue
                self.reference(f"{name}.<closure {var}>", value, names, depth, plain=True)
        for i, default in enumerate(func.__defaults__ or ()):
            self.reference(f"{name}.<default {i}>", default, names, depth, plain=True)
        for key, default in sorted((func.__kwdefaults__ or {}).items()):
            self.reference(f"{name}.<default {key}>", default, names, depth, plain=True)

    def _visit_class(self, cls: type, depth: int) -> None:
        name = _qualname(cls)
        self.entries[f"code:{name}"] = _normalised_source(cls, f"class {name}")
        for base in cls.__mro__[1:]:
            if _defined_in_user_code(base):
                self.visit(base, depth + 1)
        for attribute in vars(cls).values():
            if isinstance(attribute, (types.FunctionType, staticmethod, classmethod, property)):
                self.visit(attribute, depth + 1)

    # -- references -----------------------------------------------------------------------

    def reference(self, label: str, value: Any, names: set[str], depth: int, *,
                  plain: bool = False) -> None:
        """Record what a name the code loads resolves to.

        Module globals are recorded when they are user code or plain values; closure cells
        and defaults (``plain=True``) always contribute a canonical value.
        """
        if isinstance(value, types.ModuleType):
            if is_user_module(value):
                for attr in sorted(names):
                    if attr in vars(value):
                        self.reference(f"{value.__name__}.{attr}", vars(value)[attr], names, depth)
            return
        if isinstance(value, (types.FunctionType, type, functools.partial, types.MethodType)):
            if _defined_in_user_code(value) or (isinstance(value, functools.partial)
                                                and _defined_in_user_code(value.func)):
                self.visit(value, depth + 1)
            elif plain:
                self.entries[f"value:{label}"] = f"<{_qualname(value)}>"
            return
        if callable(getattr(value, "__fingerprint__", None)):
            self.entries[f"value:{label}"] = str(value.__fingerprint__())
            return
        if _defined_in_user_code(type(value)):
            self.visit(type(value), depth + 1)
            self.entries[f"value:{label}"] = self.value(value, depth + 1)
            return
        canonical = self.value(value, depth + 1)
        if plain or not canonical.startswith("<type "):
            self.entries[f"value:{label}"] = canonical

    def value(self, value: Any, depth: int) -> str:
        """A canonical string for a value the code reads (not a memory address)."""
        if depth > _MAX_DEPTH:
            return f"<deep {type(value).__qualname__}>"
        if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
            return f"{type(value).__name__}:{value!r}"
        if isinstance(value, (np.generic,)):
            return f"{value.dtype.str}:{value.item()!r}"
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                return "ndarray-obj:" + hash_json([self.value(v, depth + 1) for v in value.ravel()])
            return "ndarray:" + hash_arrays({"shape": list(value.shape)}, [value])
        if isinstance(value, (pd.Series, pd.DataFrame, pd.Index)):
            hashed = pd.util.hash_pandas_object(value, index=not isinstance(value, pd.Index))
            labels = list(map(str, getattr(value, "columns", [])))
            return f"{type(value).__name__}:" + hash_arrays(labels, [hashed.to_numpy()])
        if isinstance(value, (list, tuple)):
            items = ",".join(self.value(v, depth + 1) for v in value)
            return f"{type(value).__name__}[{items}]"
        if isinstance(value, (set, frozenset)):
            items = ",".join(sorted(self.value(v, depth + 1) for v in value))
            return f"{type(value).__name__}{{{items}}}"
        if isinstance(value, dict):
            items = ",".join(sorted(f"{self.value(k, depth + 1)}:{self.value(v, depth + 1)}"
                                    for k, v in value.items()))
            return f"dict{{{items}}}"
        if callable(getattr(value, "__fingerprint__", None)):
            return str(value.__fingerprint__())
        if isinstance(value, (types.FunctionType, type)):
            if _defined_in_user_code(value):
                self.visit(value, depth + 1)
            return f"<{_qualname(value)}>"
        if _defined_in_user_code(type(value)):
            self.visit(type(value), depth + 1)
            state = getattr(value, "__dict__", None)
            if state is None:
                slots = [s for c in type(value).__mro__ for s in getattr(c, "__slots__", ())]
                state = {s: getattr(value, s) for s in slots if hasattr(value, s)}
            return f"<{_qualname(type(value))}>" + self.value(dict(state), depth + 1)
        logger.debug("fingerprint: %s identified by its type only", type(value).__qualname__)
        return f"<type {_qualname(type(value))}>"


def fingerprint_entries(obj: Any) -> dict[str, Any]:
    """What the fingerprint of ``obj`` covers: ``{"code:<qualname>" | "value:<name>": ...}``.

    Useful to check which helpers a strategy's fingerprint follows.
    """
    collector = _Collector()
    if isinstance(obj, (types.FunctionType, type, functools.partial, types.MethodType,
                        staticmethod, classmethod)):
        collector.visit(obj)
    else:  # an instance (e.g. a strategy object): its class and its state
        collector.visit(type(obj))
        collector.entries["value:<instance>"] = collector.value(obj, 1)
    return collector.entries


def code_fingerprint(obj: Any, *, version: str | None = None) -> str:
    """A 32-hex-character fingerprint of ``obj``'s code and the user code it uses.

    Parameters
    ----------
    obj
        A function, class, ``functools.partial`` or instance of a user class.
    version
        If given, the fingerprint is ``obj``'s qualified name plus this string, and the
        source is not read: for code whose source is unavailable. Change the version
        whenever the behaviour changes.
    """
    if version is not None:
        return hash_json({"v": _FINGERPRINT_VERSION, "name": _qualname(obj), "version": str(version)})
    return hash_json({"v": _FINGERPRINT_VERSION, "entries": fingerprint_entries(obj)})
