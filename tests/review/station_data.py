"""A small review-ready store, written by the real LocalStore and CropStore: plankton objects
with crops (two cruises, three stations, known taxa), flagged otoliths with evidence files,
and fish sightings of provisional and known ids."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seawatch.contracts.crops import encode_crop
from seawatch.contracts.evidence import evidence_paths
from seawatch.contracts.frames import FrameKind, FrameMeta, SourceRef
from seawatch.contracts.objects import Morphometrics
from seawatch.contracts.records import FishRecord, FrameRecord, ObjectRecord, OtolithRecord
from seawatch.review.accounts import Accounts, Role
from seawatch.review_settings import ReviewSettings
from seawatch.storage.crop_store import CropStore
from seawatch.storage.evidence import EvidenceStore
from seawatch.storage.local_store import LocalStore

T0 = 1_780_000_000_000_000_000
TAXA = ("copepod", "detritus", "chaetognath", "diatom_chain", "bubble")
PASSWORD = "correct horse battery"
ROLES = {"vera": Role.VIEWER, "anna": Role.ANNOTATOR, "rolf": Role.REVIEWER, "ada": Role.ADMIN}


@dataclass(frozen=True)
class StationFiles:
    store: Path
    crops: Path
    accounts: Path
    evidence: Path


def _crop(rng: np.random.Generator, i: int) -> np.ndarray:
    image = np.full((40 + i % 17, 48), 235, np.uint8)
    cy, cx = image.shape[0] // 2, 24
    yy, xx = np.ogrid[: image.shape[0], :48]
    image[(yy - cy) ** 2 / 90 + (xx - cx) ** 2 / (30 + i % 40) < 1] = rng.integers(20, 90)
    return image


def _meta(instrument, task, at, cruise="MSM-120", station="st-01", specimen=None) -> FrameMeta:
    return FrameMeta(
        instrument=instrument,
        task=task,
        captured_at_ns=at,
        frame_kind=FrameKind.ROI,
        content_type="image/png",
        cruise=cruise,
        station=station,
        pixel_size_um=2.0,
        specimen_id=specimen,
    )


def build_station(root: Path, *, plankton: int = 300, cruise_name: str = "MSM-120") -> StationFiles:
    """Write the store, crops, evidence and accounts under ``root``."""
    rng = np.random.default_rng(25)
    files = StationFiles(
        root / "seawatch.db", root / "seawatch-crops.db", root / "review.db", root / "evidence"
    )
    store, crops, evidence = (
        LocalStore(files.store),
        CropStore(files.crops),
        EvidenceStore(files.evidence),
    )
    records, views = [], []
    for i in range(plankton):
        crop = encode_crop(_crop(rng, i))
        views.append(crop)
        taxon = TAXA[i % len(TAXA)]
        confidence = round(0.35 + 0.6 * ((i * 37) % 100) / 100, 4)
        other = TAXA[(i + 1) % len(TAXA)]
        obj = ObjectRecord(
            index=0,
            bbox=(0, 0, 48, 40),
            taxon=taxon,
            confidence=confidence,
            top_k=((taxon, confidence), (other, round(1 - confidence, 4))),
            morph=Morphometrics(200.0 + i, 20.0, 12.0, 21.0, 2.0),
            crop=crop[0],
        )
        meta = _meta(
            "flowcam-01", "plankton", T0 + i * 60_000_000_000,
            cruise=cruise_name if i % 4 else "PS-140", station=f"st-0{1 + i % 3}",
        )  # fmt: skip
        records.append(
            FrameRecord(
                meta, SourceRef("frames.plankton", 0, i), "plankton-cnn", "1", (obj,), 1, 1, 1
            )
        )
    for i in range(4):
        meta = _meta(
            "otolith-scanner-01", "otolith", T0 + i * 1_000_000_000, specimen=f"HER-{i:03d}"
        )
        thumb, heat = evidence_paths(meta, "otolith")
        evidence.write(thumb, np.full((64, 64, 3), 120, np.uint8))
        evidence.write(heat, np.full((64, 64, 3), 200, np.uint8))
        oto = OtolithRecord(f"HER-{i:03d}", 80.0 + i, True, 50.0, thumb, heat)
        records.append(
            FrameRecord(
                meta, SourceRef("frames.otolith", 0, i), "oto", "1", (), 1, 1, 1, otolith=oto
            )
        )
    for i in range(9):
        name = ("fish-new-0001", "fish-new-0002", "zf-007")[i % 3]
        view = encode_crop(np.full((30, 60, 3), 40 + 20 * i, np.uint8))
        views.append(view)
        meta = _meta("tank-cam-03", "fish", T0 + i * 2_000_000_000)
        fish = FishRecord(name, 0.8, False, name.startswith("fish-new"), view=view[0])
        records.append(
            FrameRecord(meta, SourceRef("frames.fish", 0, i), "fish", "1", (), 1, 1, 1, fish=fish)
        )
    crops.put(views)
    store.add(records)
    store.close()
    crops.close()
    accounts = Accounts(files.accounts)
    for name, role in ROLES.items():
        accounts.add_user(name, PASSWORD, role)
    accounts.close()
    return files


def add_fish_sightings(store_path: Path, individuals: list[str], per_fish: int = 2) -> None:
    """Store ``per_fish`` sightings of each id (as the daemon reports them), after the rest."""
    store = LocalStore(store_path)
    records = []
    for k, name in enumerate(individuals):
        for j in range(per_fish):
            at = T0 + 10**12 + (k * per_fish + j) * 1_000_000_000
            fish = FishRecord(name, 0.9, False, True)
            ref = SourceRef("frames.fish", 1, k * per_fish + j)
            meta = _meta("tank-cam-04", "fish", at)
            records.append(FrameRecord(meta, ref, "fish", "1", (), 1, 1, 1, fish=fish))
    store.add(records)
    store.close()


def station_settings(**overrides) -> ReviewSettings:
    """Review settings for tests (a tight login limit so the limit test is quick)."""
    return ReviewSettings(**({"login_attempts": 3, "publish_topic": None} | overrides))
