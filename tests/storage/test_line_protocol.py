"""Records -> line protocol: schema, escaping, units."""

from __future__ import annotations

import itertools
import math

import pytest

from seawatch.contracts.points import line
from seawatch.contracts.records import summarise_taxa
from seawatch.storage.line_protocol import frame_lines
from tests.storage.factories import make_record


def test_frame_and_per_taxon_points_are_stamped_with_capture_time():
    record = make_record()
    lines = frame_lines(record)
    assert len(lines) == 4  # frames + copepod + detritus + plankton_size
    assert all(text.endswith(f" {record.meta.captured_at_ns}") for text in lines)
    frames = lines[0]
    assert frames.startswith(
        "frames,cruise=MSM\\,120,instrument=uvp6-014,station=st\\ 1,task=plankton "
    )
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


def test_empty_frame_still_has_its_frames_point_and_counts_its_volume():
    lines = frame_lines(make_record(taxa=()))
    assert len(lines) == 2 and "objects=0i" in lines[0]
    # The volume of an empty frame still belongs in the spectrum's denominator.
    assert lines[1].startswith("plankton_size,") and "volume_m3=0.0005 " in lines[1]


def test_line_escaping_and_types():
    text = line("m x", {"t=a": "v,1", "empty": ""}, {"s": 'say "hi"', "b": True, "f": 1.5}, 5)
    assert text == 'm\\ x,t\\=a=v\\,1 s="say \\"hi\\"",b=true,f=1.5 5'
    assert line("m", {}, {"x": None}, 1) is None


def test_size_spectrum_point_sums_to_the_frame_biovolume():
    record = make_record(volume_ml=500.0, pixel_size_um=10.0)
    (size,) = [t for t in frame_lines(record) if t.startswith("plankton_size,")]
    assert "station=st\\ 1" in size and "taxon=" not in size
    fields = dict(kv.split("=") for kv in size.split(" ")[-2].split(","))
    assert float(fields.pop("volume_m3")) == pytest.approx(500e-6)
    total = sum(s.biovolume_mm3 for s in summarise_taxa(record))
    assert sum(float(v) for v in fields.values()) == pytest.approx(total)
    assert all(k.startswith("bv_") for k in fields)


def test_no_size_point_without_volume_or_pixel_size():
    for record in (make_record(volume_ml=None), make_record(pixel_size_um=None)):
        assert not any(t.startswith("plankton_size,") for t in frame_lines(record))


def test_frames_point_counts_unknown_objects():
    record = make_record(taxa=("unknown", "copepod", "unknown"))
    assert "unknown_objects=2i" in frame_lines(record)[0]


def test_size_classes_tile_the_range_and_double_in_biovolume():
    from seawatch.storage.size_spectrum import SIZE_CLASSES, class_of

    for a, b in itertools.pairwise(SIZE_CLASSES):
        assert a.upper_um == b.lower_um
        assert b.width_mm3 / a.width_mm3 == pytest.approx(2.0)
    for size_class in SIZE_CLASSES:
        assert class_of(size_class.lower_um) is size_class
        assert class_of(size_class.centre_um) is size_class
    assert class_of(7.9) is None and class_of(SIZE_CLASSES[-1].upper_um) is None
