"""Exports with the images: a zip EcoTaxa imports (the TSV and every kept crop at its
``img_file_name``), an EcoTaxa folder (the TSV with the crops beside it, which
``seawatch train plankton --ecotaxa`` reads) and a training folder (one folder per taxon).

An object whose crop is not kept (crops off, or past retention) cannot be imported with an
image; it is left out and counted, never written as a row naming a missing file.
"""

from __future__ import annotations

import sqlite3
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seawatch.contracts.crops import image_type
from seawatch.contracts.errors import StorageError
from seawatch.storage.crop_store import CropStore
from seawatch.storage.export import ExportFilter, iter_rows, sanitise_id, write_tsv
from seawatch.storage.local_store import open_readonly

TSV_NAME = "ecotaxa_seawatch.tsv"  # EcoTaxa imports files named ecotaxa_*.tsv


@dataclass(frozen=True, slots=True)
class ImageExport:
    """What an export wrote: objects with their image, and objects left out (no crop)."""

    written: int
    without_crop: int


def _with_crops(
    rows: Iterator[dict[str, Any]], crops: CropStore, missing: list[int]
) -> Iterator[tuple[dict[str, Any], bytes]]:
    """Rows whose crop is kept, with its bytes; counts the others in ``missing[0]``."""
    batch: list[dict[str, Any]] = []

    def drain():
        found = crops.many(r["_crop"] for r in batch if r["_crop"])
        for row in batch:
            data = found.get(row["_crop"]) if row["_crop"] else None
            if data is None:
                missing[0] += 1
            else:
                if image_type(data) == "image/jpeg":  # an ROI kept as the instrument sent it
                    row["img_file_name"] = row["img_file_name"].removesuffix(".png") + ".jpg"
                yield row, data
        batch.clear()

    for row in rows:
        batch.append(row)
        if len(batch) >= 500:
            yield from drain()
    yield from drain()


def _open(store: Path, crops_path: Path) -> tuple[sqlite3.Connection, CropStore]:
    return open_readonly(store), CropStore(crops_path, readonly=True)


def export_zip(store: Path, crops_path: Path, out: Path, flt: ExportFilter) -> ImageExport:
    """The TSV and the crops in one zip (written beside ``out``, renamed when complete)."""
    db, crops = _open(store, crops_path)
    part = out.with_name(out.name + ".part")
    tsv = out.with_name(out.name + ".tsv.part")
    missing = [0]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        rows: list[dict[str, Any]] = []
        with zipfile.ZipFile(part, "w", compression=zipfile.ZIP_STORED) as archive:
            for row, data in _with_crops(iter_rows(db, flt, with_crop=True), crops, missing):
                archive.writestr(row["img_file_name"], data)  # PNG/JPEG: already compressed
                rows.append(row)
            write_tsv(iter(rows), tsv)
            archive.write(tsv, TSV_NAME, compress_type=zipfile.ZIP_DEFLATED)
        part.replace(out)
        return ImageExport(len(rows), missing[0])
    except (OSError, sqlite3.Error) as exc:
        raise StorageError(f"cannot write the zip {out}: {exc}") from exc
    finally:
        db.close()
        crops.close()
        part.unlink(missing_ok=True)
        tsv.unlink(missing_ok=True)


def export_folder(
    store: Path, crops_path: Path, out_dir: Path, flt: ExportFilter, *, by_taxon: bool
) -> ImageExport:
    """An EcoTaxa folder (``by_taxon`` False: the TSV with the crops beside it) or a
    training folder (``by_taxon`` True: ``<taxon>/<object id>.png``)."""
    db, crops = _open(store, crops_path)
    missing = [0]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        rows = []
        for row, data in _with_crops(iter_rows(db, flt, with_crop=True), crops, missing):
            if by_taxon:
                folder = out_dir / sanitise_id(row["object_annotation_category"] or "unknown")
                folder.mkdir(exist_ok=True)
                (folder / row["img_file_name"]).write_bytes(data)
            else:
                (out_dir / row["img_file_name"]).write_bytes(data)
            rows.append(row)
        if not by_taxon:
            write_tsv(iter(rows), out_dir / TSV_NAME)
        return ImageExport(len(rows), missing[0])
    except (OSError, sqlite3.Error) as exc:
        raise StorageError(f"cannot write the export to {out_dir}: {exc}") from exc
    finally:
        db.close()
        crops.close()


__all__ = ["TSV_NAME", "ImageExport", "export_folder", "export_zip"]
