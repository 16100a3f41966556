"""Write the seed corpus of the frame parser fuzz target: valid records, one per file.

Run from the repository root: ``python fuzz/make_corpus.py`` (it rewrites
``fuzz/corpus/frame_parser/``). The seeds are inputs of :func:`fuzz_frame_parser.record_from`:
a full header set with a PNG, JPEG or TIFF value, ROI and full frames, the key standing in
for the instrument, a claim check, and the built-in images selected by mode byte.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fuzz_frame_parser import IMAGES, TOPICS, serialise

OUT = Path(__file__).resolve().parent / "corpus" / "frame_parser"
TYPES = ("image/png", "image/jpeg", "image/tiff")


def _headers(content_type: str, **extra: bytes) -> list[tuple[str, bytes | None]]:
    base = {
        "content-type": content_type.encode(),
        "instrument": b"uvp6-014",
        "captured-at": b"2026-06-01T12:00:00.250Z",
        "frame-kind": b"full",
        "cruise": b"MSM-120",
        "lat": b"43.7",
        "volume-ml": b"1000",
        "pixel-size-um": b"73",
    }
    base.update(extra)
    return list(base.items())


def seeds() -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for content_type, image in zip(TYPES, IMAGES, strict=True):
        name = content_type.split("/")[1]
        found[f"full-{name}"] = serialise(_headers(content_type), TOPICS[0], b"uvp6-014", image)
        roi = _headers(content_type, **{"frame-kind": b"roi", "task": b"plankton"})
        found[f"roi-{name}"] = serialise(roi, TOPICS[3], None, image)
    otolith = [(k, v) for k, v in _headers("image/png") if k != "instrument"]
    found["otolith-key-instrument"] = serialise(otolith, TOPICS[1], b"scanner-2", IMAGES[0])
    found["claim-check"] = serialise(
        _headers("text/uri-list"), TOPICS[0], b"k", b"file:///frames/a.png\n"
    )
    for mode, content_type in enumerate(TYPES, start=1):  # built-in images: no edit, no cut
        base = serialise(_headers(content_type)[:4], TOPICS[0], b"k", b"")
        found[f"builtin-{content_type.split('/')[1]}"] = base[:-1] + bytes([mode, 0, 0xFF, 0xFF])
    return found


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        old.unlink()
    for name, data in seeds().items():
        (OUT / name).write_bytes(data)
    print(f"wrote {len(seeds())} seeds to {OUT}")


if __name__ == "__main__":
    main()
