"""Records -> InfluxDB line protocol, following the storage contract of the architecture.

Points are stamped with the frame's capture time (ns), so a replayed frame overwrites its
own points. Tags are bounded sets only (cruise, instrument, station, task, taxon, model);
frame ids are fields.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from seawatch.contracts.records import UNKNOWN, FrameRecord, summarise_taxa
from seawatch.storage.size_spectrum import biovolume_by_class

FieldValue = int | float | bool | str | None

# Line protocol cannot carry line breaks or tabs in names and tag values, nor line breaks in
# string fields for readers that split lines before parsing: they are written as two
# characters (``\n``), as influxdb-client does for names and tags.
_SPELLED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_KEY = str.maketrans({"\\": "\\\\", ",": "\\,", "=": "\\=", " ": "\\ ", **_SPELLED})
_MEASUREMENT = str.maketrans({"\\": "\\\\", ",": "\\,", " ": "\\ ", **_SPELLED})
_STRING = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"})


def _escape_key(text: str) -> str:
    return text.translate(_KEY)


def _escape_measurement(text: str) -> str:
    return text.translate(_MEASUREMENT)


def _field(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return f'"{str(value).translate(_STRING)}"'


def _present(value: FieldValue) -> bool:
    # None is "no value"; so are NaN and infinities, which line protocol cannot write.
    return value is not None and not (isinstance(value, float) and not math.isfinite(value))


def line(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue], time_ns: int
) -> str | None:
    """One line of line protocol; None and non-finite fields are left out, None when no field
    is left."""
    body = ",".join(f"{_escape_key(k)}={_field(v)}" for k, v in fields.items() if _present(v))
    if not body:
        return None
    tag_text = "".join(f",{_escape_key(k)}={_escape_key(v)}" for k, v in sorted(tags.items()) if v)
    return f"{_escape_measurement(measurement)}{tag_text} {body} {time_ns}"


def frame_lines(record: FrameRecord) -> list[str]:
    """The ``frames`` point, then one ``plankton`` point per taxon and the ``plankton_size``
    point, or the ``otolith`` or ``fish`` point, depending on the frame's task."""
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
                "sharpness": None if record.quality is None else record.quality.sharpness,
                "saturated_share": None
                if record.quality is None
                else record.quality.saturated_share,
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
    if record.fish is not None:
        f = record.fish
        lines.append(
            line(
                "fish",
                tags,
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


__all__ = ["frame_lines", "line", "records_to_lines"]
