"""The otolith teacher as its own artifact: pretrained once, long, and loaded by the detector.

The detector's teacher plays the part an ImageNet backbone plays in the MKD literature: a
frozen feature extractor trained before, and apart from, the anomaly detector. None can be
downloaded here, so ``seawatch train otolith-teacher`` pretrains one on the project's
synthetic auxiliary task (:mod:`.teacher`) for longer than a detector run could afford (the
lab found the teacher's pretraining to be what limits the detector, and that it keeps
improving with hard-negative epochs: experiments/otolith/README.md). It writes
``teacher.pt`` (a :class:`~.network.FeatureNet` state_dict), ``loss.png`` and ``teacher.json``: the
architecture, the input normalisation it was trained with, the schedule, the loss history,
the data seeds, the command and the weights' SHA-256. ``seawatch train otolith
--teacher-weights DIR/teacher.pt`` reads that card, checks the architecture, uses its
normalisation and copies its provenance into the detector's card.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from seawatch.contracts.errors import ConfigError
from seawatch.models.otolith.plan import (
    OFFSETS,
    QUICK,
    Plan,
    channel_stats,
    render_training_set,
)
from seawatch.models.otolith.teacher import TASK, TEACHER_FILE, pretrain_for_plan
from seawatch.models.training import seed_everything, select_device, training_progress

TEACHER_CARD = "teacher.json"
LOSS_FILE = "loss.png"
_FONT = cv2.FONT_HERSHEY_SIMPLEX
#: Hard-negative epochs of the standalone teacher (a detector run pretrains its own with
#: ``Plan.teacher_hard_epochs``). Lab, 128 px: 18 / 30 / 42 gave the teacher's heads test
#: AUROC 0.929 / 0.941 / 0.948, still rising.
HARD_EPOCHS = 72


@dataclass(frozen=True, slots=True)
class TeacherCard:
    """What a pretrained teacher is and how it was made (``teacher.json``)."""

    widths: tuple[int, ...]
    depth: int
    stem_stride: int
    input_size: int
    rgb_mean: tuple[float, ...]
    rgb_std: tuple[float, ...]
    task: str
    epochs: int
    hard_epochs: int
    seed: int
    data: dict[str, Any]
    command: str
    seconds: float
    device: str
    torch: str
    weights_sha256: str
    created_at: str
    history: list[dict[str, Any]]

    def write(self, out_dir: Path) -> Path:
        """Write ``teacher.json`` into ``out_dir``; return its path."""
        path = Path(out_dir) / TEACHER_CARD
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    def provenance(self) -> dict[str, Any]:
        """The summary a detector's card keeps of the teacher it was distilled from."""
        keep = ("task", "epochs", "hard_epochs", "seed", "command", "seconds", "device")
        return {k: getattr(self, k) for k in keep} | {"weights_sha256": self.weights_sha256}


def read_teacher_card(weights: Path) -> TeacherCard | None:
    """The ``teacher.json`` beside ``weights``, or None when there is none.

    A card that does not parse, or whose weights' SHA-256 differs from the file, is a
    configuration error: the provenance would be wrong.
    """
    path = Path(weights).with_name(TEACHER_CARD)
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
        raw["widths"] = tuple(raw["widths"])
        raw["rgb_mean"], raw["rgb_std"] = tuple(raw["rgb_mean"]), tuple(raw["rgb_std"])
        card = TeacherCard(**raw)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = f"{path}: not a teacher card ({exc}); rerun `seawatch train otolith-teacher`"
        raise ConfigError(msg) from exc
    actual = sha256(Path(weights))
    if actual != card.weights_sha256:
        msg = (
            f"{weights}: SHA-256 {actual[:12]}... differs from {path} "
            f"({card.weights_sha256[:12]}...); the weights were replaced after pretraining"
        )
        raise ConfigError(msg)
    return card


def check_compatible(card: TeacherCard, plan: Plan, weights: Path) -> None:
    """Fail, naming the field, when the teacher was pretrained for another architecture."""
    want = {
        "widths": tuple(plan.widths),
        "depth": plan.teacher_depth,
        "stem_stride": plan.stem_stride,
        "input_size": plan.input_size,
    }
    have = {k: getattr(card, k) for k in want}
    for key, value in want.items():
        if have[key] != value:
            msg = (
                f"--teacher-weights {weights}: teacher {key}={have[key]}, this run needs "
                f"{value}; pretrain a matching one with `seawatch train otolith-teacher`"
                + (" --quick" if plan == QUICK else "")
            )
            raise ConfigError(msg)


def draw_loss(path: Path, history: list[dict[str, Any]], *, title: str) -> Path:
    """``loss.png``: the pretraining loss per epoch, plain and hard-negative phases in colour.

    The hard-negative loss counts the hardest unaltered pixels again, so it sits on its own
    scale; each phase gets its own y range, labelled at its ends.
    """
    width, height, left, top = 640, 300, 50, 40
    canvas = np.full((height + top + 50, width + left + 20, 3), 255, np.uint8)
    n = max(len(history), 2)
    for hard, colour in ((False, (180, 80, 20)), (True, (40, 40, 200))):
        rows = [(i, r["loss"]) for i, r in enumerate(history) if bool(r["hard"]) == hard]
        if not rows:
            continue
        low, high = min(v for _, v in rows), max(v for _, v in rows)
        span = (high - low) or 1.0
        points = np.array(
            [
                (left + round(i / (n - 1) * width), top + round((high - v) / span * height))
                for i, v in rows
            ],
            np.int32,
        )
        cv2.polylines(canvas, [points], False, colour, 2, cv2.LINE_AA)
        label = "hard negatives" if hard else "plain"
        for (x, y), value in ((points[0], rows[0][1]), (points[-1], rows[-1][1])):
            cv2.circle(canvas, (int(x), int(y)), 3, colour, -1)
            at = (int(x) + 4 if x < left + width - 60 else int(x) - 50, int(y) - 6)
            cv2.putText(canvas, f"{value:.3f}", at, _FONT, 0.38, colour, 1, cv2.LINE_AA)
        cv2.putText(
            canvas,
            f"{label} (own scale)",
            (left + 10 + 200 * hard, top + height + 36),
            _FONT,
            0.42,
            colour,
            1,
            cv2.LINE_AA,
        )
    cv2.rectangle(canvas, (left, top), (left + width, top + height), (0, 0, 0), 1)
    cv2.putText(canvas, title, (8, 22), _FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(
        canvas,
        f"epoch 1 .. {len(history)}",
        (left + width - 110, top + height + 16),
        _FONT,
        0.38,
        (0, 0, 0),
        1,
        cv2.LINE_AA,
    )
    if not cv2.imwrite(str(path), canvas):
        msg = f"could not write {path}; check that the directory is writable"
        raise OSError(msg)
    return path


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def train_teacher_artifact(
    out_dir: Path,
    *,
    seed: int = 0,
    device: str = "cpu",
    epochs: int | None = None,
    hard_epochs: int | None = None,
    command: str = "seawatch train otolith-teacher",
    quick: bool = False,
) -> TeacherCard:
    """Pretrain the colour teacher on the detector's training set; write the artifact.

    The data (normal otoliths and foreign textures, from ``seed``) and the architecture are
    those of :class:`~.train.Plan` (or :data:`~.train.QUICK`); ``epochs`` and
    ``hard_epochs`` override the plain and hard-negative phases (default: the plan's plain
    epochs and :data:`HARD_EPOCHS`, or the quick plan's).
    """
    plan = QUICK if quick else Plan()
    plan = replace(
        plan,
        teacher_epochs=plan.teacher_epochs if epochs is None else epochs,
        teacher_hard_epochs=(
            hard_epochs
            if hard_epochs is not None
            else plan.teacher_hard_epochs
            if quick
            else HARD_EPOCHS
        ),
    )
    if plan.teacher_epochs < 1 or plan.teacher_hard_epochs < 0:
        msg = (
            f"--epochs must be >= 1 and --hard-epochs >= 0, got {plan.teacher_epochs} and "
            f"{plan.teacher_hard_epochs}"
        )
        raise ConfigError(msg)
    device = select_device(device)
    seed_everything(seed)
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with training_progress() as progress:
        train, textures = render_training_set(plan, seed, progress)
        rgb_mean, rgb_std = channel_stats(train)
        net, history = pretrain_for_plan(
            plan, train, textures, (rgb_mean, rgb_std), seed, device, progress
        )
    weights = out_dir / TEACHER_FILE
    torch.save({k: v.cpu() for k, v in net.state_dict().items()}, weights)
    card = TeacherCard(
        widths=tuple(plan.widths),
        depth=plan.teacher_depth,
        stem_stride=plan.stem_stride,
        input_size=plan.input_size,
        rgb_mean=rgb_mean,
        rgb_std=rgb_std,
        task=TASK,
        epochs=plan.teacher_epochs,
        hard_epochs=plan.teacher_hard_epochs,
        seed=seed,
        data={
            "train": {"seed": seed, "n_normal": plan.n_train, "render_size": plan.render_size},
            "textures": {"seed": seed + OFFSETS["textures"], "n": plan.n_textures},
            "batch_size": plan.batch_size,
            "lr": plan.teacher_lr,
        },
        command=command,
        seconds=round(time.perf_counter() - started, 1),
        device=device,
        torch=torch.__version__,
        weights_sha256=sha256(weights),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        history=history,
    )
    card.write(out_dir)
    draw_loss(out_dir / LOSS_FILE, history, title=f"teacher pretraining loss ({command})")
    return card


__all__ = [
    "HARD_EPOCHS",
    "LOSS_FILE",
    "TEACHER_CARD",
    "TeacherCard",
    "check_compatible",
    "draw_loss",
    "read_teacher_card",
    "sha256",
    "train_teacher_artifact",
]
