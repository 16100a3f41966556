"""A fish gallery as one ``.npz`` file (no pickle): the model's known fish, the daemon's
working copy (single-process fallback), and the export each worker writes of the shared one.

Arrays: ``embeddings`` (M x D float32), ``owner`` (M, index into ``ids``), ``view_source``
(M, the frame uid each view came from, "" when enrolled by hand), ``view_similarity`` (M, that
sighting's score), ``ids``, ``provisional``, ``enrolled_at`` (ISO 8601 UTC), ``first_seen_ns``,
``merged_into`` ("" when not merged), ``dim`` and ``format`` (2). Format 1 files (no view
sources, no merges; a ``next_new`` counter that ids no longer come from) still load.
:func:`write_arrays` writes a temporary file beside the target and ``os.replace``-s it, so a
reader never sees half a gallery.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from seawatch.contracts.errors import ConfigError

FORMAT = 2
_KEYS_V1 = ("embeddings", "owner", "ids", "provisional", "enrolled_at", "dim", "format")
_KEYS_V2 = (*_KEYS_V1, "view_source", "view_similarity", "first_seen_ns", "merged_into")


def write_arrays(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write a gallery's arrays atomically to ``path`` (a ``.npz`` file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    try:
        os.fchmod(handle, mode)  # mkstemp makes 0600; keep the file readable as before
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """A gallery file's arrays (format 1 upgraded to 2), checked for consistency."""
    path = Path(path)
    try:
        with path.open("rb") as handle, np.load(handle, allow_pickle=False) as data:
            version = int(data["format"])
            keys = _KEYS_V2 if version == FORMAT else _KEYS_V1
            arrays = {key: data[key] for key in keys}
    except FileNotFoundError:
        msg = f"gallery file {path} does not exist; enrol individuals or train a model first"
        raise ConfigError(msg) from None
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        msg = f"gallery file {path} is corrupt or not a gallery ({exc}); restore it or re-enrol"
        raise ConfigError(msg) from exc
    arrays = _upgraded(arrays)
    _check(path, arrays)
    return arrays


def _upgraded(a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Format 1 arrays with the format 2 ones added (no sources, no merges)."""
    if int(a["format"]) != 1:
        return a
    n, m = len(a["ids"]), len(a["embeddings"])
    return {
        **a,
        "format": np.array(FORMAT),
        "view_source": np.full(m, "", dtype=np.str_),
        "view_similarity": np.full(m, np.nan),
        "first_seen_ns": np.zeros(n, np.int64),
        "merged_into": np.full(n, "", dtype=np.str_),
    }


def _check(path: Path, a: dict[str, np.ndarray]) -> None:
    emb, owner, n, m = a["embeddings"], a["owner"], len(a["ids"]), len(a["embeddings"])
    consistent = (
        int(a["format"]) == FORMAT
        and emb.ndim == 2
        and np.issubdtype(emb.dtype, np.floating)
        and len(owner) == len(a["view_source"]) == len(a["view_similarity"]) == m
        and len(a["provisional"]) == len(a["enrolled_at"]) == n
        and len(a["first_seen_ns"]) == len(a["merged_into"]) == n
        and (n == 0 or (owner.min() >= 0 and owner.max() < n))
        and bool(np.isfinite(emb).all())
        and (int(a["dim"]) == emb.shape[1] or m == 0)
    )
    if not consistent:
        msg = f"gallery file {path} is corrupt (inconsistent arrays); restore it or re-enrol"
        raise ConfigError(msg)


def working_gallery(path: Path, model_gallery: Path) -> Path:
    """The daemon's own gallery file at ``path``, seeded from the model's gallery the first
    time. The model's gallery (known individuals) is never written to; enrolments of new
    individuals go to the working copy (``storage.local.fish_gallery``)."""
    if not path.exists():
        if not model_gallery.is_file():
            msg = f"fish model has no gallery file at {model_gallery}; retrain or enrol one"
            raise ConfigError(msg)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model_gallery, path)
    return path


__all__ = ["FORMAT", "read_arrays", "working_gallery", "write_arrays"]
