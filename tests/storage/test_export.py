"""`seawatch export objects`: the EcoTaxa TSV parses back, Parquet round-trips, filters work."""

from __future__ import annotations

import math
import re
import sqlite3
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from seawatch.cli import cli
from seawatch.contracts.frames import epoch_ns
from seawatch.contracts.records import FrameRecord, OtolithRecord
from seawatch.storage.export import (
    COLUMNS,
    ExportFilter,
    export_objects,
    iter_rows,
    sanitise_id,
)
from seawatch.storage.local_store import LocalStore, open_readonly
from tests.storage.factories import make_record, make_task_record

T0 = 1_780_000_000_000_000_000  # 2026-05-28T20:26:40Z
HOUR = 3_600 * 10**9
PREFIXES = ("object_", "img_", "sample_", "acq_", "process_")
ID_CHARS = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _record(captured_at_ns: int, taxa: tuple[str, ...], **meta: object) -> FrameRecord:
    record = make_record(captured_at_ns, taxa, pixel_size_um=meta.pop("pixel_size_um", 10.0))
    return replace(record, meta=replace(record.meta, **meta))


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store with three cruises' worth of frames, awkward text, and an otolith frame."""
    path = tmp_path / "seawatch.db"
    local = LocalStore(path)
    local.add(
        [
            _record(
                T0,
                ("copepod", "copepod", "detritus"),
                lat=54.25,
                lon=7.5,
                depth_m=12.5,
                sample_id="S 1/a",
            ),
            _record(
                T0 + HOUR,
                ("copepod", "radiolaria\tcolonial"),
                cruise="HE600",
                station="line\nbreak",
                lat=95.0,  # out of EcoTaxa's range: must come out empty
                lon=-7.25,
                depth_m=-0.5,  # above the surface: exported as 0
                pixel_size_um=None,  # no µm morphometrics
            ),
            # two instruments whose uids collide once unsafe characters become "_"
            _record(T0 + 2 * HOUR, ("copepod",), cruise="HE600", instrument="uvp 6"),
            _record(T0 + 2 * HOUR, ("bubble",), cruise="HE600", instrument="uvp_6"),
            make_task_record("otolith", T0, otolith=OtolithRecord("MSM120-oto-1", 0.1, False, 0.5)),
        ]
    )
    local.close()
    return path


def parse_ecotaxa_tsv(path: Path) -> tuple[list[str], list[dict[str, object]]]:
    """A strict reader: header, [t]/[f] type row, typed values; fails on anything else."""
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "", "the file ends with a newline"
    header, types, *body = (line.split("\t") for line in lines[:-1])
    assert len(set(header)) == len(header), "duplicate column names"
    assert len(types) == len(header)
    assert set(types) <= {"[t]", "[f]"}, f"bad type row {types}"
    for name in header:
        assert name.startswith(PREFIXES), f"{name} has no EcoTaxa prefix"
        assert name == name.lower()
    rows: list[dict[str, object]] = []
    for cells in body:
        assert len(cells) == len(header), "ragged row"
        row: dict[str, object] = {}
        for name, kind, cell in zip(header, types, cells, strict=True):
            assert "\r" not in cell
            if kind == "[f]":
                assert cell.lower() not in {"nan", "none", "null", "inf"}, f"{name}={cell}"
                row[name] = None if cell == "" else float(cell)
                assert row[name] is None or math.isfinite(row[name])  # type: ignore[arg-type]
            else:
                row[name] = cell
        rows.append(row)
    return header, rows


def _export_tsv(store: Path, tmp_path: Path, flt: ExportFilter | None = None) -> list[dict]:
    out = tmp_path / "objects.tsv"
    n = export_objects(store, out, "tsv", flt or ExportFilter())
    header, rows = parse_ecotaxa_tsv(out)
    assert header == [name for name, _ in COLUMNS]
    assert n == len(rows)
    return rows


def test_tsv_parses_back_with_a_type_row_that_matches_the_values(store, tmp_path):
    out = tmp_path / "objects.tsv"
    export_objects(store, out, "tsv", ExportFilter())
    header, rows = parse_ecotaxa_tsv(out)
    types = dict(zip(header, out.read_text().split("\n")[1].split("\t"), strict=True))
    for name in ("object_lat", "object_depth_min", "object_area", "object_biovolume_um3"):
        assert types[name] == "[f]"
    for name in ("object_id", "object_date", "img_file_name", "sample_id", "process_id"):
        assert types[name] == "[t]"
    assert {"object_id", "img_file_name", "sample_id", "acq_id", "process_id"} <= set(header)
    assert len(rows) == 7  # the otolith frame has no objects
    first = rows[0]
    assert first["object_date"] == "20260528" and first["object_time"] == "202640"
    assert first["object_lat"] == 54.25 and first["object_lon"] == 7.5
    assert first["object_depth_min"] == first["object_depth_max"] == 12.5
    assert first["object_annotation_status"] == "predicted"
    assert first["object_confidence"] == pytest.approx(0.9)
    assert first["object_area"] == 100.0 and first["object_area_um2"] == pytest.approx(10_000.0)
    assert first["sample_id"] == "S_1_a" and first["sample_cruise"] == "MSM,120"
    assert first["acq_volume_ml"] == 500.0 and first["acq_pixel_size_um"] == 10.0
    assert first["img_file_name"] == "uvp6-014_1780000000000000000_0.png"
    assert first["img_rank"] == 0.0
    assert first["process_model"] == "plankton-cnn" and first["process_model_version"] == "0.1.0"
    assert re.fullmatch(r"\d{8}", str(first["process_date"]))


def test_values_stay_within_ecotaxa_limits(store, tmp_path):
    rows = _export_tsv(store, tmp_path)
    ids = [row["object_id"] for row in rows]
    assert len(set(ids)) == len(ids), "object ids must be unique"
    assert all(ID_CHARS.match(str(i)) for i in ids)
    assert all(ID_CHARS.match(str(row["img_file_name"])) for row in rows)
    for row in rows:
        assert row["object_lat"] is None or -90 <= row["object_lat"] <= 90  # type: ignore[operator]
        assert row["object_lon"] is None or -180 <= row["object_lon"] <= 180  # type: ignore[operator]
        assert row["object_depth_min"] is None or row["object_depth_min"] >= 0  # type: ignore[operator]
    he600 = [row for row in rows if row["sample_cruise"] == "HE600"]
    second = he600[0]
    assert second["object_lat"] is None and second["object_lon"] == -7.25
    assert second["object_depth_min"] == 0.0
    assert second["sample_station"] == "line break"
    assert second["object_area_um2"] is None and second["object_biovolume_um3"] is None
    assert second["object_area"] is not None
    assert second["sample_id"] == "HE600_line_break"  # no sample id: cruise + station
    collided = [row["object_id"] for row in he600 if str(row["acq_id"]).startswith("uvp_6")]
    assert sorted(collided) == ["uvp_6_1780007200000000000_0", "uvp_6_1780007200000000000_0-2"]


def test_counts_per_taxon_equal_the_store(store, tmp_path):
    rows = _export_tsv(store, tmp_path)
    exported = Counter(row["object_annotation_category"] for row in rows)
    db = open_readonly(store)
    stored = Counter(
        {
            re.sub(r"\s+", " ", taxon): n
            for taxon, n in db.execute("SELECT taxon, COUNT(*) FROM objects GROUP BY taxon")
        }
    )
    db.close()
    assert exported == stored
    assert exported == {"copepod": 4, "detritus": 1, "radiolaria colonial": 1, "bubble": 1}


def test_filters_by_cruise_and_time_range(store, tmp_path):
    by_cruise = _export_tsv(store, tmp_path, ExportFilter(cruise="HE600"))
    assert len(by_cruise) == 4 and {r["sample_cruise"] for r in by_cruise} == {"HE600"}
    window = ExportFilter(since_ns=T0 + HOUR, until_ns=T0 + 2 * HOUR)  # until is exclusive
    in_window = _export_tsv(store, tmp_path, window)
    assert [r["object_annotation_category"] for r in in_window] == [
        "copepod",
        "radiolaria colonial",
    ]
    both = _export_tsv(store, tmp_path, ExportFilter(cruise="MSM,120", since_ns=T0 + 1))
    assert both == []
    assert len(_export_tsv(store, tmp_path, ExportFilter(since_ns=T0 + 2 * HOUR))) == 2
    assert len(_export_tsv(store, tmp_path, ExportFilter(until_ns=T0 + 1))) == 3


def test_parquet_round_trips_the_same_rows(store, tmp_path):
    out = tmp_path / "objects.parquet"
    assert export_objects(store, out, "parquet", ExportFilter()) == 7
    table = pq.read_table(out)
    assert table.column_names == [name for name, _ in COLUMNS]
    assert table.schema.field("object_lat").type == pa.float64()
    assert table.schema.field("object_bbox_x").type == pa.int64()
    assert table.schema.field("object_id").type == pa.string()
    db = open_readonly(store)
    expected = list(iter_rows(db, ExportFilter()))
    db.close()
    assert table.to_pylist() == expected
    # and the TSV carries the same values
    tsv_rows = _export_tsv(store, tmp_path)
    for parquet_row, tsv_row in zip(table.to_pylist(), tsv_rows, strict=True):
        for name, kind in COLUMNS:
            value = parquet_row[name]
            if kind == "t":
                assert tsv_row[name] == (value or "")
            else:
                assert tsv_row[name] == (None if value is None else float(value))


def test_an_empty_selection_still_writes_valid_files(store, tmp_path):
    assert export_objects(store, tmp_path / "e.parquet", "parquet", ExportFilter("nope")) == 0
    assert pq.read_table(tmp_path / "e.parquet").num_rows == 0
    assert _export_tsv(store, tmp_path, ExportFilter(cruise="nope")) == []


def test_time_bounds_and_ids():
    assert epoch_ns("2026-05-28T20:26:40Z") == T0
    assert epoch_ns("2026-05-28T22:26:40.5+02:00") == T0 + 500_000_000
    assert epoch_ns(str(T0)) == T0
    with pytest.raises(ValueError, match="time zone"):
        epoch_ns("2026-05-28T20:26:40")
    with pytest.raises(ValueError, match="RFC 3339"):
        epoch_ns("yesterday")
    assert sanitise_id("a b/c:d@1\t") == "a_b_c_d_1_"
    assert sanitise_id("") == "_"


def test_a_file_that_is_no_store_is_a_storage_error(tmp_path):
    from seawatch.contracts.errors import StorageError

    bogus = tmp_path / "bogus.db"
    sqlite3.connect(bogus).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(StorageError, match="cannot read objects"):
        export_objects(bogus, tmp_path / "o.tsv", "tsv", ExportFilter())
    assert not (tmp_path / "o.tsv").exists() and not (tmp_path / "o.tsv.part").exists()


# --- the command line ---------------------------------------------------------------------


def _invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, ["export", "objects", *args], env=env)


def test_cli_writes_tsv_and_parquet(store, tmp_path):
    result = _invoke("--store", str(store), "--out", str(tmp_path / "a.tsv"), "--cruise", "HE600")
    assert result.exit_code == 0, result.output
    assert "wrote 4 objects" in result.output
    assert len(parse_ecotaxa_tsv(tmp_path / "a.tsv")[1]) == 4
    result = _invoke(
        "--store",
        str(store),
        "--out",
        str(tmp_path / "b.dat"),
        "--format",
        "parquet",
        "--since",
        "2026-05-28T21:26:40Z",
        "--until",
        str(T0 + 2 * HOUR),
    )
    assert result.exit_code == 0, result.output
    assert "wrote 2 objects" in result.output and "(parquet)" in result.output
    assert pq.read_table(tmp_path / "b.dat").num_rows == 2


def test_cli_defaults_to_the_configured_store(store, tmp_path):
    env = {"SEAWATCH_STORAGE__LOCAL__PATH": str(store)}
    result = _invoke("--out", str(tmp_path / "c.parquet"), env=env)
    assert result.exit_code == 0, result.output
    assert "wrote 7 objects" in result.output


@pytest.mark.parametrize(
    ("args", "field", "fix"),
    [
        (["--store", "{tmp}/missing.db"], "--store", "run the daemon first"),
        (["--out", "{tmp}/x.csv"], "--out", "pass --format"),
        (["--format", "xlsx"], "--format", "'tsv', 'parquet'"),
        (["--since", "last tuesday"], "--since", "RFC 3339"),
        (["--until", "2026-05-28T20:26:40"], "--until", "add Z or an offset"),
        (["--since", str(T0 + 1), "--until", str(T0)], "--since/--until", "swap them"),
    ],
)
def test_cli_errors_name_the_field_and_the_fix(store, tmp_path, args, field, fix):
    base = {"--store": str(store), "--out": str(tmp_path / "x.tsv")}
    given = [a.format(tmp=tmp_path) for a in args]
    for option, value in base.items():
        if option not in given:
            given += [option, value]
    result = _invoke(*given)
    assert result.exit_code == 2, result.output
    assert field in result.output and fix in result.output
    assert not (tmp_path / "x.tsv").exists()


def test_cli_help_names_the_zip_with_crops_and_the_review_status():
    result = _invoke("--help")
    assert result.exit_code == 0
    assert "zip" in result.output and "--status" in result.output
