"""Records -> InfluxDB line protocol, following the storage contract of the architecture.

Points are stamped with the frame's capture time (ns), so a replayed frame overwrites its
own points. Tags are bounded sets only (cruise, instrument, station, task, taxon, model);
frame ids are fields.
"""

from __future__ import annotations

from collections.abc import Iterable

from seawatch.contracts.points import FieldValue, line
from seawatch.contracts.records import UNKNOWN, FrameRecord, summarise_taxa
from seawatch.storage.size_spectrum import biovolume_by_class


def frame_lines(record: FrameRecord) -> list[str]:
    """The ``frames`` point (with the release of the model that scored the frame), then one
    ``plankton`` point per taxon and the ``plankton_size`` point, or the ``otolith`` point,
    or one ``fish`` point per sighting (a whole frame's fish after its first are tagged
    ``sighting=<index>``; the first, and a crop's one fish, carry no such tag, as before),
    depending on the frame's task; a plug-in task's ``fields`` become one point of a
    measurement named after the task."""
    meta, when = record.meta, record.meta.captured_at_ns
    lines = [
        line(
            "frames",
            {
                "cruise": meta.cruise,
                "instrument": meta.instrument,
                "station": meta.station,
                "task": meta.task,
            },
            {
                "objects": len(record.objects),
                "unknown_objects": sum(o.taxon == UNKNOWN for o in record.objects)
                if meta.task == "plankton"
                else None,
                "decode_ms": record.decode_ms,
                "infer_ms": record.infer_ms,
                "latency_ms": record.latency_ms,
                "volume_ml": meta.volume_ml,
                "frame_uid": record.uid,
                "model_version": record.model_version,
                "sharpness": None if record.quality is None else record.quality.sharpness,
                "saturated_share": None
                if record.quality is None
                else record.quality.saturated_share,
                "segmentation_quality": None
                if record.quality is None
                else record.quality.segmentation,
            },
            when,
        )
    ]
    if meta.task == "plankton":
        for summary in summarise_taxa(record):
            lines.append(
                line(
                    "plankton",
                    {
                        "cruise": meta.cruise,
                        "instrument": meta.instrument,
                        "station": meta.station,
                        "taxon": summary.taxon,
                        "model": record.model,
                    },
                    {
                        "count": summary.count,
                        "concentration_per_m3": summary.concentration_per_m3,
                        "mean_esd_um": summary.mean_esd_um,
                        "biovolume_mm3": summary.biovolume_mm3,
                    },
                    when,
                )
            )
        lines.append(_size_line(record))
    tags = {"cruise": meta.cruise, "instrument": meta.instrument, "model": record.model}
    if record.otolith is not None:
        o = record.otolith
        lines.append(
            line(
                "otolith",
                tags,
                {
                    "score": o.score,
                    "anomaly": o.anomaly,
                    "flagged": int(o.anomaly),  # numeric twin: mean() is the anomaly rate
                    "threshold": o.threshold,
                    "specimen_id": o.specimen_id,
                    "frame_uid": record.uid,
                    "thumbnail": o.thumbnail,
                    "heatmap": o.heatmap,
                },
                when,
            )
        )
    for k, f in enumerate(record.fish_sightings):
        lines.append(
            line(
                "fish",
                # a whole frame's later fish are told apart by their index in the frame (a
                # bounded tag): one timestamp, else each would overwrite the one before
                {**tags, "sighting": str(k) if k else ""},
                {
                    "individual": f.individual,
                    "similarity": f.similarity,
                    "new_individual": f.new_individual,
                    "provisional": f.provisional,
                    "frame_uid": record.uid,
                },
                when,
            )
        )
    if record.fields:  # a plug-in task's outputs: a measurement named after the task
        fields = {**dict(record.fields), "frame_uid": record.uid}
        lines.append(line(meta.task, {**tags, "task": meta.task}, fields, when))
    return [text for text in lines if text is not None]


def _size_line(record: FrameRecord) -> str | None:
    """The frame's ``plankton_size`` point: imaged volume and biovolume per ESD class.

    Left out when the frame lacks its volume or pixel size (no spectrum can be made)."""
    meta = record.meta
    if meta.volume_ml is None or meta.pixel_size_um is None:
        return None
    esds = [o.morph.esd_um for o in record.objects if o.morph.esd_um is not None]
    fields: dict[str, FieldValue] = {"volume_m3": meta.volume_ml * 1e-6}
    fields.update(biovolume_by_class(esds))
    tags = {"cruise": meta.cruise, "instrument": meta.instrument, "station": meta.station}
    return line("plankton_size", tags, fields, meta.captured_at_ns)


def records_to_lines(records: Iterable[FrameRecord]) -> list[str]:
    """All lines for a batch of records."""
    return [text for record in records for text in frame_lines(record)]


__all__ = ["frame_lines", "records_to_lines"]
