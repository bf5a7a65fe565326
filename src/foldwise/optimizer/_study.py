"""Study names, the metadata stored with a study, and the refusal to resume a different one.

Layout in the Optuna storage, for an optimization named ``name``:

* ``name`` — the **manifest** study. Its user attribute ``foldwise`` holds the metadata
  that identifies the optimization: data (content hash, size, dates), splitter (repr,
  canonical configuration, fold-set id, every fold's id and bars), strategy (name, code
  fingerprint), metric and direction, search space, backtest settings, mode. In
  cross-validated mode the manifest is also the study whose trials are the evaluations.
* ``name/fold-00``, ``name/fold-01``, ... — one study per fold in walk-forward mode, each
  with the fold's number and id in its user attributes.

Resuming compares the stored metadata with the new call's, field by field, and refuses a
difference with :class:`~foldwise.errors.StudyMismatchError` naming what changed and how
to start a new study instead. Everything needed to rebuild a result is in the storage.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import optuna

from foldwise._hashing import hash_text
from foldwise._version import __version__
from foldwise.data import MarketData
from foldwise.errors import StudyMismatchError
from foldwise.space import SearchSpace
from foldwise.strategy import Strategy

if TYPE_CHECKING:
    from foldwise.splits import FoldSet

    from ._settings import RunSettings

__all__ = ["META_ATTR", "check_metadata", "fold_study_name", "manifest_metadata"]

META_ATTR = "foldwise"
FOLD_ATTR = "foldwise_fold"
_FORMAT = 1


def fold_study_name(name: str, number: int) -> str:
    """Name of the study of fold ``number`` of optimization ``name``."""
    return f"{name}/fold-{number:02d}"


def fold_set_name(name: str) -> str:
    """Name of the optimization's fold set in the fold store (a valid file name).

    The study name itself when it is one; otherwise its characters outside ``A-Za-z0-9._-``
    replaced and a short hash of the full name added, so two studies never share a set.
    """
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}", name):
        return name
    slug = re.sub(r"[^A-Za-z0-9._-]", "-", name).lstrip("._-")[:150] or "study"
    return f"{slug}-{hash_text(name)[:8]}"


def manifest_metadata(*, mode: str, data: MarketData, folds: FoldSet, strategy: Strategy,
                      metric: str, direction: str, space: SearchSpace, settings: RunSettings,
                      top_k: int, cv_aggregate: str | None, warmup: int | None,
                      groups: list[list[int]] | None) -> dict[str, Any]:
    """The JSON-able description stored with a study (see the module docstring)."""
    return {
        "format": _FORMAT,
        "foldwise_version": __version__,
        "mode": mode,
        "data": {"content_hash": data.content_hash, "n_dates": data.n_dates,
                 "n_assets": data.n_assets, "first": data.index[0].isoformat(),
                 "last": data.index[-1].isoformat()},
        "splitter": {"repr": folds.splitter, "config": folds.config, "fold_set_id": folds.id},
        "folds": [{"number": f.number, "fold_id": f.fold_id, "train": [list(r) for r in f.train_ranges],
                   "test": [list(r) for r in f.test_ranges],
                   "train_start": data.index[int(f.train[0])].isoformat(),
                   "train_end": data.index[int(f.train[-1])].isoformat(),
                   "test_start": data.index[int(f.test[0])].isoformat(),
                   "test_end": data.index[int(f.test[-1])].isoformat(),
                   "test_groups": [int(g) for g in f.test_groups]} for f in folds],
        "groups": groups,
        "strategy": {"name": strategy.name, "fingerprint": strategy.fingerprint,
                     "causal": strategy.causal},
        "metric": metric,
        "direction": direction,
        "space": space.describe(),
        "settings": settings.describe(),
        "top_k": top_k,
        "cv_aggregate": cv_aggregate,
        "warmup": warmup if not strategy.causal else None,
    }


def _describe_change(field: str, old: Any, new: Any) -> str:
    if field == "data":
        return (f"the data changed: stored {old['n_dates']} dates {old['first'][:10]}.."
                f"{old['last'][:10]} (content hash {old['content_hash'][:12]}...), now "
                f"{new['n_dates']} dates {new['first'][:10]}..{new['last'][:10]} "
                f"(content hash {new['content_hash'][:12]}...)")
    if field == "splitter":
        return f"the splitter changed: stored {old['repr']}, now {new['repr']}"
    if field == "strategy":
        if old["name"] != new["name"]:
            return f"the strategy changed: stored {old['name']!r}, now {new['name']!r}"
        return (f"the code of strategy {new['name']!r} (or of a helper it calls) changed: "
                f"fingerprint {old['fingerprint'][:12]}... -> {new['fingerprint'][:12]}...")
    if field in ("metric", "direction", "mode", "top_k", "cv_aggregate", "warmup"):
        return f"{field} changed: stored {old!r}, now {new!r}"
    return f"the {field} changed: stored {old}, now {new}"


# Fields compared on resume, in the order they are reported. The folds follow from the
# data and the splitter, and foldwise_version / format are informative only.
_IDENTITY = ("mode", "data", "splitter", "strategy", "metric", "direction", "space",
             "settings", "cv_aggregate", "warmup")


def check_metadata(manifest: optuna.Study, metadata: dict[str, Any]) -> bool:
    """Store ``metadata`` on a new manifest, or check it against the stored one.

    Returns
    -------
    bool
        True when the study already existed (a resume).

    Raises
    ------
    StudyMismatchError
        Naming every field that differs, with the fix.
    """
    stored = manifest.user_attrs.get(META_ATTR)
    if stored is None:
        manifest.set_user_attr(META_ATTR, metadata)
        return False
    changes = [_describe_change(field, stored.get(field), metadata.get(field))
               for field in _IDENTITY if stored.get(field) != metadata.get(field)]
    if changes:
        name = manifest.study_name
        raise StudyMismatchError(
            f"study {name!r} was started with other settings, so resuming it would mix "
            f"results that do not belong together: {'; '.join(changes)}. Start a new study "
            f"with another name (e.g. study={name + '-v2'!r}), or delete the old one with "
            f"foldwise.delete_study({name!r}, storage=...) to start over under this name.")
    updated = {**stored, **{k: metadata[k] for k in _UPDATABLE if k in metadata}}
    if updated != stored:
        manifest.set_user_attr(META_ATTR, updated)
    return True


# Fields a resumed study may change: they steer what is read back, not what was run.
_UPDATABLE = ("top_k", "benchmark")


def delete_study(name: str, storage: Any = None, cache: Any = None) -> int:
    """Delete optimization ``name``: its manifest, every fold study, its stored fold set.

    Parameters
    ----------
    storage, cache
        The ``storage=`` and ``cache=`` of the optimization (None: the defaults).

    Returns the number of Optuna studies deleted. Cached backtests are kept: a new study on
    the same data and strategy reuses them.
    """
    from foldwise._paths import resolve_root
    from foldwise._storage import open_storage, parse_storage
    from foldwise.splits import FoldStore

    root = getattr(cache, "root", None) or resolve_root(cache)
    FoldStore(root).delete(fold_set_name(name))

    opened = open_storage(parse_storage(storage))
    names = [n for n in optuna.get_all_study_names(storage=opened)
             if n == name or n.startswith(name + "/fold-")]
    for study_name in names:
        optuna.delete_study(study_name=study_name, storage=opened)
    return len(names)
