"""The import structure DESIGN.md asks for: layers point down, no private names across
subpackages, every access to Optuna internals in the storage package."""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import foldwise

PACKAGE = Path(foldwise.__file__).parent

#: Each layer may import only the layers after it (DESIGN.md, "Imports point down"). Units
#: are top-level modules or subpackages of foldwise; those not named are shared utilities
#: (errors, hashing, paths, ...) that import none of these.
LAYERS = [
    ("cli", "cli_config", "examples"),
    ("optimizer",),
    ("storage",),  # the Optuna storage glue, beside the optimizer
    ("aggregate",),
    ("records",),
    ("cache",),
    ("pipeline",),
    ("strategy",),
    ("backtest", "space"),
    ("metrics", "stats", "snooping"),
    ("splits",),
    ("data",),
]
_RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


@functools.cache
def _parsed() -> tuple[tuple[str, ast.Module], ...]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(("foldwise", *parts)).removesuffix(".__init__")
        found.append((name, ast.parse(path.read_text(encoding="utf-8"))))
    return tuple(found)


def _modules() -> Iterator[tuple[str, ast.Module]]:
    yield from _parsed()


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(name: str, tree: ast.Module) -> Iterator[tuple[str, list[str], int]]:
    """(imported module, imported names, line) of every import, typing-only ones included."""
    package = name if name.endswith("__init__") else name.rsplit(".", 1)[0]
    is_package = (PACKAGE / Path(*name.split(".")[1:]) / "__init__.py").exists()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = (name if is_package else package).split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield module, [a.name for a in node.names], node.lineno


def test_layers_point_down():
    wrong = []
    for name, tree in _modules():
        here = _unit(name)
        for module, _, line in _imports(name, tree):
            there = _unit(module) if module.startswith("foldwise.") else ""
            if here in _RANK and there in _RANK and there != here and _RANK[there] < _RANK[here]:
                wrong.append(f"{name}:{line} imports {module} (a higher layer)")
    assert not wrong, "\n".join(wrong)


def test_aggregate_never_imports_the_optimizer():
    wrong = [f"{name}:{line} imports {module}" for name, tree in _modules()
             if name.startswith("foldwise.aggregate")
             for module, _, line in _imports(name, tree) if module.startswith("foldwise.optimizer")]
    assert not wrong, "\n".join(wrong)


def _private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def test_no_module_imports_a_private_name_of_another_subpackage():
    wrong = []
    for name, tree in _modules():
        here = _unit(name)
        for module, names, line in _imports(name, tree):
            if not module.startswith("foldwise.") or _unit(module) == here:
                continue
            parts = module.split(".")
            # foldwise._x modules are the package's shared utilities (hashing, paths, ...);
            # a private module or name *inside another subpackage* is off limits.
            inner = parts[2:]
            if any(_private(p) for p in inner) or any(_private(n) for n in names):
                wrong.append(f"{name}:{line} imports {module} {names}")
    assert not wrong, "\n".join(wrong)


def _private_definitions(unit: str) -> set[str]:
    """Private attribute names a unit defines (methods, ``self._x`` assignments)."""
    names: set[str] = set()
    for name, tree in _modules():
        if _unit(name) != unit:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value)  # __slots__ entries
    return {n for n in names if _private(n)}


#: Underscored names that are public API of the standard library.
PUBLIC = {("os", "_exit")}


def test_no_module_reads_a_private_attribute_defined_elsewhere():
    """``obj._x`` on anything but ``self``/``cls`` must name something its own subpackage
    defines; Optuna's private attributes are read in ``foldwise.storage`` only."""
    defined = {unit: _private_definitions(unit) for unit in {_unit(n) for n, _ in _modules()}}
    wrong = []
    for name, tree in _modules():
        here = _unit(name)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and _private(node.attr)):
                continue
            if isinstance(node.value, ast.Name) and (
                    node.value.id in ("self", "cls") or (node.value.id, node.attr) in PUBLIC):
                continue
            if here == "storage" or node.attr in defined[here]:
                continue
            wrong.append(f"{name}:{node.lineno} reads .{node.attr}")
    assert not wrong, "\n".join(wrong)


def test_the_optimizer_does_not_import_the_demo_strategies():
    """Regression: the optimizer's core imported ``foldwise.examples`` for its benchmark."""
    wrong = [f"{name}:{line}" for name, tree in _modules()
             if _unit(name) in ("optimizer", "aggregate", "records", "cache", "storage")
             for module, _, line in _imports(name, tree) if module == "foldwise.examples"]
    assert not wrong, "\n".join(wrong)
