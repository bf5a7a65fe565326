"""Where foldwise keeps what it stores (cache, fold definitions, study storage).

The default is ``./.foldwise/`` in the working directory, so a project's results live next
to it and a new checkout starts empty. The environment variable ``FOLDWISE_DIR`` moves it
(for a shared disk, a scratch volume, CI); an explicit ``path=`` argument or the CLI's
``--dir`` option wins over both.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ENV_VAR", "default_root", "resolve_root"]

#: Environment variable that overrides the default location.
ENV_VAR = "FOLDWISE_DIR"


def default_root() -> Path:
    """``$FOLDWISE_DIR`` if set, else ``./.foldwise`` (relative to the working directory)."""
    configured = os.environ.get(ENV_VAR)
    return Path(configured).expanduser() if configured else Path.cwd() / ".foldwise"


def resolve_root(path: str | os.PathLike[str] | None = None) -> Path:
    """``path`` if given, else :func:`default_root`; made absolute, not created."""
    return (Path(path).expanduser() if path is not None else default_root()).absolute()
