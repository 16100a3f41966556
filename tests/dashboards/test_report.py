"""The HTML cruise report: its numbers are the records' numbers, from either source.

Expected values are computed here from the records themselves (counts, pooled
concentrations, the NBSS from each object's ESD), not with the report's code, and read back
from the page through the exact values its tables keep in ``data-value``.
"""

from __future__ import annotations

import base64
import bisect
import math
from collections import Counter
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from seawatch.config import load_settings
from seawatch.contracts.evidence import evidence_paths
from seawatch.contracts.points import line
from seawatch.contracts.records import FishRecord, FrameRecord, OtolithRecord
from seawatch.dashboards.influxql import InfluxQLClient
from seawatch.dashboards.report import data_influx as report_data
from seawatch.dashboards.report import from_influx, from_local_store, render
from seawatch.dashboards.report.command import report_command
from seawatch.storage.evidence import EvidenceStore
from seawatch.storage.line_protocol import records_to_lines
from seawatch.storage.local_store import LocalStore
from seawatch.storage.size_spectrum import EDGES_UM
from tests.servers import influxdb1
from tests.storage.factories import make_record, make_task_record

CRUISE = "MSM 120, leg 2"  # a space and a comma: escaped in tags, quoted in InfluxQL
T0 = 1_780_000_000_000_000_000
TAXA = (
    ("copepod", "copepod", "detritus", "copepod"),
    ("diatom_chain", "detritus"),
    ("copepod", "unknown", "detritus", "detritus", "radiolarian"),
)
#: specimen id -> (score, BGR colour of its thumbnail); above 0.5 is flagged.
OTOLITHS = {
    "oto-A": (0.91, (40, 200, 60)),
    "oto-B": (0.12, (200, 60, 40)),
    "oto-C": (0.77, (60, 60, 220)),
    "oto-D": (0.30, (120, 120, 120)),
}
FISH = ("fish-a", "fish-b", "fish-a", "fish-a", "fish-b")


def _in_cruise(record: FrameRecord, cruise: str) -> FrameRecord:
    return replace(record, meta=replace(record.meta, cruise=cruise))


def cruise_records(cruise: str = CRUISE) -> list[FrameRecord]:
    """Plankton frames at two stations (one without volume, one without pixel size, one
    empty), scored otoliths (two flagged, with evidence paths) and fish sightings."""
    records = []
    for k in range(12):
        volume = None if k == 4 else 500.0 + 50 * k
        pixel = None if k == 7 else (10.0 if k % 2 else 25.0)
        record = make_record(
            T0 + k * 60 * 10**9,
            () if k == 9 else TAXA[k % 3],
            volume_ml=volume,
            pixel_size_um=pixel,
            station="st-01" if k < 6 else "st-02",
            offset=k,
        )
        records.append(_in_cruise(record, cruise))
    for k, (specimen, (score, _colour)) in enumerate(OTOLITHS.items()):
        when = T0 + (k * 97 + 30) * 10**9
        base = make_task_record("otolith", when)
        thumb, heat = evidence_paths(base.meta, "otolith") if score > 0.5 else (None, None)
        otolith = OtolithRecord(specimen, score, score > 0.5, 0.5, thumb, heat)
        records.append(_in_cruise(make_task_record("otolith", when, otolith=otolith), cruise))
    for k, individual in enumerate(FISH):
        fish = FishRecord(individual, 0.7 + 0.05 * k, k == 1, k == 1)
        when = T0 + (k * 130 + 45) * 10**9
        records.append(_in_cruise(make_task_record("fish", when, fish=fish), cruise))
    tank = (  # a whole tank frame: three sightings, a new fish second
        FishRecord("fish-b", 0.81, False, False, bbox=(0, 0, 60, 20)),
        FishRecord("fish-c", 0.33, True, True, bbox=(90, 0, 60, 20)),
        FishRecord("fish-a", 0.77, False, False, bbox=(180, 0, 60, 20)),
    )
    when = T0 + 700 * 10**9
    records.append(_in_cruise(make_task_record("fish", when, sightings=tank), cruise))
    return records


def thumbnail_colour(specimen_id: str) -> tuple[int, int, int]:
    return OTOLITHS[specimen_id][1]


def write_evidence(records: list[FrameRecord], evidence: EvidenceStore) -> None:
    """A plain thumbnail in the specimen's colour and a red heat map per flagged otolith."""
    for r in records:
        o = r.otolith
        if o is not None and o.thumbnail and o.heatmap:
            evidence.write(
                o.thumbnail, np.full((300, 200, 3), thumbnail_colour(o.specimen_id), np.uint8)
            )
            evidence.write(o.heatmap, np.full((300, 200, 3), (0, 0, 255), np.uint8))


def build_store(directory: Path) -> tuple[Path, Path, list[FrameRecord]]:
    """A local store and evidence directory holding :func:`cruise_records`."""
    records = cruise_records(CRUISE)
    path, evidence = directory / "store.db", directory / "evidence"
    write_evidence(records, EvidenceStore(evidence))
    local = LocalStore(path)
    local.add(records)
    local.close()
    return path, evidence, records


# -- reading the page back ---------------------------------------------------------------
class _Page(HTMLParser):
    """Cells with data-value per (table id, row key, column); cards; images."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[tuple[str, str, str], float] = {}
        self.cards: dict[str, list[str]] = {}
        self.images: list[str] = []
        self._table = self._row = ""
        self._card: str | None = None
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id") or ""
        elif tag == "tr":
            self._row = a.get("data-key") or ""
        elif tag == "td" and a.get("data-value") is not None:
            self.cells[(self._table, self._row, a["data-col"] or "")] = float(a["data-value"])
        elif tag == "div" and a.get("data-specimen") is not None:
            self._card, self._depth = a["data-specimen"], 0
            self.cards[self._card] = []
        elif tag == "img":
            self.images.append(a.get("src") or "")
            if self._card is not None:
                self.cards[self._card].append(a.get("src") or "")
        if tag == "div" and self._card is not None:
            self._depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._card is not None:
            self._depth -= 1
            if self._depth == 0:
                self._card = None


def read_page(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def decode(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/jpeg;base64,"), uri[:40]
    raw = np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8)
    image = cv2.imdecode(raw, cv2.IMREAD_COLOR)
    assert image is not None and image.size > 0
    return image


# -- expected values, straight from the records ------------------------------------------
def plankton(records: list[FrameRecord]) -> list[FrameRecord]:
    return [r for r in records if r.meta.task == "plankton"]


def expected_totals(records: list[FrameRecord]) -> Counter[str]:
    return Counter(o.taxon for r in plankton(records) for o in r.objects)


def expected_concentrations(records: list[FrameRecord], station: str | None = None):
    frames = [r for r in plankton(records) if r.meta.volume_ml is not None]
    frames = [r for r in frames if station is None or r.meta.station == station]
    volume_m3 = sum(r.meta.volume_ml for r in frames) / 1e6
    counts = Counter(o.taxon for r in frames for o in r.objects)
    return {taxon: counts[taxon] / volume_m3 for taxon in expected_totals(records)}


def expected_nbss(records: list[FrameRecord]) -> dict[int, float]:
    """Class index -> NBSS (m⁻³), from each object's ESD sphere."""
    frames = [
        r
        for r in plankton(records)
        if r.meta.volume_ml is not None and r.meta.pixel_size_um is not None
    ]
    volume_m3 = sum(r.meta.volume_ml for r in frames) / 1e6
    biovolume: dict[int, float] = {}
    for r in frames:
        for o in r.objects:
            esd = 2 * math.sqrt(o.morph.area_px / math.pi) * r.meta.pixel_size_um
            k = bisect.bisect_right(EDGES_UM, esd) - 1
            if 0 <= k < len(EDGES_UM) - 1:
                biovolume[k] = biovolume.get(k, 0.0) + math.pi / 6 * esd**3 / 1e9
    widths = {k: math.pi / 6 * (EDGES_UM[k + 1] ** 3 - EDGES_UM[k] ** 3) / 1e9 for k in biovolume}
    return {k: bv / volume_m3 / widths[k] for k, bv in biovolume.items()}


# -- fixtures ------------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, Path, list[FrameRecord]]:
    return build_store(tmp_path)


def test_numbers_match_the_records(store: tuple[Path, Path, list[FrameRecord]]) -> None:
    path, evidence, records = store
    text = render(from_local_store(path, evidence))
    page = read_page(text)

    totals = expected_totals(records)
    assert {k[1] for k in page.cells if k[0] == "taxa"} == set(totals)
    for taxon, count in totals.items():
        assert page.cells[("taxa", taxon, "count")] == count
    for taxon, value in expected_concentrations(records).items():
        assert page.cells[("taxa", taxon, "concentration")] == pytest.approx(value, rel=1e-9)
    for station in ("st-01", "st-02"):
        expected = sum(expected_concentrations(records, station).values())
        cell = page.cells[("stations", station, "concentration")]
        assert cell == pytest.approx(expected, rel=1e-9)

    nbss = expected_nbss(records)
    assert len(nbss) >= 3  # the fixture spreads objects over several classes
    shown = {key[1]: v for key, v in page.cells.items() if key[0] == "nbss" and key[2] == "nbss"}
    assert shown == pytest.approx({f"bv_{k:02d}": v for k, v in nbss.items()}, rel=1e-9)

    # Summary header: frames, objects, taxa, flagged otoliths, fish individuals.
    flagged = sum(r.otolith is not None and r.otolith.anomaly for r in records)
    header = {
        "frames": len(records),
        "objects": sum(totals.values()),
        "taxa": len(totals),
        "flagged": flagged,
        "individuals": len({f.individual for r in records for f in r.fish_sightings}),
    }
    for name, value in header.items():
        assert f'<div id="summary-{name}"><b>{value}</b>' in text, name
    assert page.cells[("timing", "plankton", "objects")] == sum(totals.values())


def test_flagged_otoliths_with_their_images(
    store: tuple[Path, Path, list[FrameRecord]],
) -> None:
    path, evidence, records = store
    page = read_page(render(from_local_store(path, evidence)))
    flagged = [r.otolith for r in records if r.otolith is not None and r.otolith.anomaly]
    normal = [r.otolith for r in records if r.otolith is not None and not r.otolith.anomaly]
    assert flagged and normal
    assert set(page.cards) == {o.specimen_id for o in flagged}
    for o in flagged:
        thumb, heat = (decode(uri) for uri in page.cards[o.specimen_id])
        # The fixture paints each thumbnail in its own colour and every heat map red.
        expected = thumbnail_colour(o.specimen_id)
        assert np.abs(thumb.reshape(-1, 3).mean(0) - expected).max() < 12
        assert heat[..., 2].mean() > 150 > heat[..., 0].mean()
    for o in normal:
        assert o.specimen_id not in page.cards


def test_missing_parts_are_said_not_crashed(tmp_path: Path) -> None:
    # Plankton only, and no frame knows its volume or pixel size.
    records = [
        make_record(1_780_000_000_000_000_000 + k * 10**9, volume_ml=None, pixel_size_um=None)
        for k in range(3)
    ]
    local = LocalStore(tmp_path / "s.db")
    local.add(records)
    local.close()
    text = render(from_local_store(tmp_path / "s.db", tmp_path / "nowhere"))
    assert "No frame reports its imaged volume" in text
    assert "No size spectrum" in text
    assert "No otolith frames" in text
    assert "No fish sightings" in text
    page = read_page(text)
    assert page.cells[("taxa", "copepod", "count")] == 6
    assert ("taxa", "copepod", "concentration") not in page.cells

    # Nothing at all.
    empty = LocalStore(tmp_path / "empty.db")
    empty.close()
    assert "No plankton frames" in render(from_local_store(tmp_path / "empty.db"))


def test_evidence_files_missing(store: tuple[Path, Path, list[FrameRecord]]) -> None:
    path, _evidence, _records = store
    text = render(from_local_store(path, None))
    assert "images unavailable: no evidence directory given" in text
    assert "<img" not in text


def test_cruise_and_time_filters(store: tuple[Path, Path, list[FrameRecord]]) -> None:
    path, evidence, records = store
    times = sorted(r.meta.captured_at_ns for r in records)
    start, end = times[3], times[-3]
    data = from_local_store(path, evidence, cruise=CRUISE, start_ns=start, end_ns=end)
    assert len(data.frames) == sum(start <= t < end for t in times)
    assert from_local_store(path, evidence, cruise="other").frames == []


def test_command_writes_the_report(
    store: tuple[Path, Path, list[FrameRecord]], tmp_path: Path
) -> None:
    path, evidence, records = store
    settings = load_settings(None, storage__local__path=path)
    out = tmp_path / "out" / "report.html"
    args = ["--out", str(out), "--evidence", str(evidence), "--start", "2026-05-01T00:00:00Z"]
    result = CliRunner().invoke(report_command, args, obj={"settings": settings})
    assert result.exit_code == 0, result.output
    assert f"{len(records)} frames" in result.output
    assert "data:image/jpeg;base64," in out.read_text()
    bad = CliRunner().invoke(report_command, ["--start", "yesterday"], obj={"settings": settings})
    assert bad.exit_code == 2 and "RFC 3339" in bad.output


@pytest.mark.integration
def test_local_store_and_influxdb_agree(
    store: tuple[Path, Path, list[FrameRecord]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, evidence, records = store
    monkeypatch.setattr(report_data, "_PAGE", 7)  # exercise the paging of every measurement
    with influxdb1(tmp_path / "influx") as server:
        client = InfluxQLClient(server.url, "seawatch")
        client.execute("CREATE DATABASE seawatch")
        pipeline = [
            line(
                "pipeline",
                {"worker": "seawatch@host", "stage": "all"},
                {
                    "frames_per_s": 12.5 * k,
                    "objects_per_s": 30.0,
                    "errors": k,
                    "lag": 4 - k,
                    "outbox_backlog": 0,
                },
                records[0].meta.captured_at_ns + k * 10**9,
            )
            for k in range(1, 4)
        ]
        server.write("seawatch", records_to_lines(records) + [p for p in pipeline if p])
        # A frame of another cruise, and one outside the window: both must be left out.
        other = replace(records[0], meta=replace(records[0].meta, cruise="other"))
        late = replace(records[0], meta=replace(records[0].meta, captured_at_ns=2 * 10**18))
        server.write("seawatch", records_to_lines([other, late]))

        times = [r.meta.captured_at_ns for r in records]
        window = (min(times), max(times) + 1)
        remote = from_influx(client, CRUISE, *window, evidence_root=evidence)
        local = from_local_store(path, evidence, CRUISE, *window)

    assert len(remote.frames) == len(records)
    assert remote.frames == local.frames
    assert remote.taxa == local.taxa
    assert remote.otoliths == local.otoliths
    assert remote.fish == local.fish
    assert [(s.time_ns, s.station, s.volume_m3) for s in remote.sizes] == [
        (s.time_ns, s.station, s.volume_m3) for s in local.sizes
    ]
    for a, b in zip(remote.sizes, local.sizes, strict=True):
        assert a.biovolume_mm3 == pytest.approx(b.biovolume_mm3, rel=1e-12)

    remote_page, local_page = read_page(render(remote)), read_page(render(local))
    local_cells = {k: v for k, v in local_page.cells.items() if k[0] != "workers"}
    remote_cells = {k: v for k, v in remote_page.cells.items() if k[0] != "workers"}
    assert remote_cells.keys() == local_cells.keys()
    for key, value in local_cells.items():
        assert remote_cells[key] == pytest.approx(value, rel=1e-9), key
    assert remote_page.cards.keys() == local_page.cards.keys()
    # The daemon's health points exist in InfluxDB only.
    assert remote_page.cells[("workers", "seawatch@host", "points")] == 3
    assert remote_page.cells[("workers", "seawatch@host", "fps")] == pytest.approx(25.0)
    assert remote_page.cells[("workers", "seawatch@host", "errors")] == 6


def test_otolith_and_fish_rows(store: tuple[Path, Path, list[FrameRecord]]) -> None:
    path, evidence, records = store
    data = from_local_store(path, evidence)
    sightings = Counter(f.individual for r in records for f in r.fish_sightings)
    assert sightings["fish-c"] == 1  # the tank frame's second fish is counted
    assert data.individuals() == dict(sightings.most_common())
    page = read_page(render(data))
    for individual, n in sightings.items():
        assert page.cells[("fish", individual, "sightings")] == n
