"""Records -> line protocol: schema, escaping, units."""

from __future__ import annotations

import math

import pytest

from seawatch.storage.line_protocol import frame_lines, line
from seawatch.storage.records import summarise_taxa
from tests.storage.factories import make_record


def test_frame_and_per_taxon_points_are_stamped_with_capture_time():
    record = make_record()
    lines = frame_lines(record)
    assert len(lines) == 3  # frames + copepod + detritus
    assert all(text.endswith(f" {record.meta.captured_at_ns}") for text in lines)
    frames = lines[0]
    assert frames.startswith("frames,cruise=MSM\\,120,instrument=uvp6-014,task=plankton ")
    assert "objects=3i" in frames and 'frame_uid="uvp6-014@' in frames
    copepod = next(t for t in lines if "taxon=copepod" in t)
    assert "station=st\\ 1" in copepod and "count=2i" in copepod


def test_concentration_and_biovolume_follow_ecotaxa():
    record = make_record(volume_ml=500.0, pixel_size_um=10.0)
    copepod = next(s for s in summarise_taxa(record) if s.taxon == "copepod")
    assert copepod.concentration_per_m3 == pytest.approx(2 / 500e-6)
    esd_um = [2 * math.sqrt(a / math.pi) * 10.0 for a in (100.0, 200.0)]
    assert copepod.mean_esd_um == pytest.approx(sum(esd_um) / 2)
    volume_mm3 = sum(math.pi / 6 * e**3 for e in esd_um) * 1e-9
    assert copepod.biovolume_mm3 == pytest.approx(volume_mm3)


def test_missing_metadata_leaves_fields_out_instead_of_inventing_them():
    record = make_record(volume_ml=None, pixel_size_um=None)
    copepod = next(t for t in frame_lines(record) if "taxon=copepod" in t)
    assert "concentration_per_m3" not in copepod and "mean_esd_um" not in copepod
    assert "count=2i" in copepod
    assert "volume_ml" not in frame_lines(record)[0]


def test_empty_frame_still_has_its_frames_point():
    lines = frame_lines(make_record(taxa=()))
    assert len(lines) == 1 and "objects=0i" in lines[0]


def test_line_escaping_and_types():
    text = line("m x", {"t=a": "v,1", "empty": ""}, {"s": 'say "hi"', "b": True, "f": 1.5}, 5)
    assert text == 'm\\ x,t\\=a=v\\,1 s="say \\"hi\\"",b=true,f=1.5 5'
    assert line("m", {}, {"x": None}, 1) is None
