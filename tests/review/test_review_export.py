"""What people validated, exported with its crops: a zip EcoTaxa imports, an EcoTaxa folder
the plankton training reads, a folder per taxon; objects whose crop is gone are left out
and counted."""

from __future__ import annotations

import csv
import sqlite3
import zipfile

from seawatch.storage.export import ExportFilter
from seawatch.storage.image_export import TSV_NAME, export_folder, export_zip


def _validate(store, n, label=None):
    db = sqlite3.connect(store)
    uids = [u for (u,) in db.execute("SELECT frame_uid FROM objects ORDER BY 1 LIMIT ?", (n,))]
    for uid in uids:
        db.execute(
            "UPDATE objects SET status = 'validated', label = COALESCE(?, label), version = 1 "
            "WHERE frame_uid = ?",
            (label, uid),
        )
    db.commit()
    return uids


def _tsv_rows(text: str) -> list[dict]:
    lines = text.splitlines()
    return list(csv.DictReader([lines[0], *lines[2:]], delimiter="\t"))


def test_the_zip_holds_the_tsv_and_every_named_image(station_files, tmp_path):
    _validate(station_files.store, 5, "marine_snow")
    out = tmp_path / "export.zip"
    done = export_zip(
        station_files.store, station_files.crops, out, ExportFilter(status="validated")
    )
    assert (done.written, done.without_crop) == (5, 0)
    with zipfile.ZipFile(out) as archive:
        rows = _tsv_rows(archive.read(TSV_NAME).decode())
        names = set(archive.namelist())
        assert {r["img_file_name"] for r in rows} | {TSV_NAME} == names
        assert all(archive.read(r["img_file_name"])[:8] == b"\x89PNG\r\n\x1a\n" for r in rows)
    assert {(r["object_annotation_category"], r["object_annotation_status"]) for r in rows} == {
        ("marine_snow", "validated")
    }


def test_objects_whose_crop_is_gone_are_left_out_and_counted(station_files, tmp_path):
    uids = _validate(station_files.store, 4)
    db = sqlite3.connect(station_files.store)
    digest = db.execute("SELECT crop FROM objects WHERE frame_uid = ?", (uids[0],)).fetchone()[0]
    crops = sqlite3.connect(station_files.crops)
    crops.execute("DELETE FROM crops WHERE digest = ?", (digest,))
    crops.commit()
    validated = ExportFilter(status="validated")
    out = tmp_path / "eco"
    done = export_folder(station_files.store, station_files.crops, out, validated, by_taxon=False)
    assert (done.written, done.without_crop) == (3, 1)
    rows = _tsv_rows((tmp_path / "eco" / TSV_NAME).read_text())
    assert len(rows) == 3 and all((tmp_path / "eco" / r["img_file_name"]).is_file() for r in rows)


def test_the_training_folder_has_one_folder_per_validated_taxon(station_files, tmp_path):
    _validate(station_files.store, 10)
    out = tmp_path / "train"
    done = export_folder(
        station_files.store, station_files.crops, out, ExportFilter(status="validated"),
        by_taxon=True,
    )  # fmt: skip
    files = sorted(p.relative_to(out).parts[0] for p in out.rglob("*.png"))
    db = sqlite3.connect(station_files.store)
    expected = sorted(
        name for (name,) in db.execute("SELECT label FROM objects WHERE status = 'validated'")
    )
    assert done.written == 10 and files == expected


def test_the_plankton_loader_reads_the_exported_ecotaxa_folder(station_files, tmp_path):
    from seawatch.models.plankton.datasets import load_ecotaxa

    _validate(station_files.store, 12)
    out = tmp_path / "eco"
    export_folder(
        station_files.store, station_files.crops, out, ExportFilter(status="validated"),
        by_taxon=False,
    )  # fmt: skip
    loaded = load_ecotaxa(out / TSV_NAME, size=64, validated_only=True)
    assert loaded.images.shape == (12, 64, 64) and not loaded.skipped
    db = sqlite3.connect(station_files.store)
    labels = db.execute("SELECT label FROM objects WHERE status = 'validated'").fetchall()
    assert sorted(loaded.class_names[i] for i in loaded.labels) == sorted(
        name for (name,) in labels
    )
