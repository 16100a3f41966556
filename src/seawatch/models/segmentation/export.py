"""The segmentation artifact: ``model.onnx`` (the U-Net: input ``image`` N x 1 x H x W, the
frame's signal at half size, 0..255, H and W multiples of 32; output ``maps`` N x 2 x H x W,
foreground probability and centre-ness; batch, height and width dynamic), ``quality.onnx``
(input ``window`` N x 6 x 32 x 32, output ``iou`` N) and ``card.json``. Both graphs are
checked against torch before the card is written."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seawatch.contracts.card import (
    ONNX_FILE,
    InputSpec,
    ModelCard,
    TrainingSummary,
    load_card,
    sha256_file,
)
from seawatch.ingest.segment_model import (
    CORE_LEVEL,
    MERGE_LEVEL,
    QUALITY_CHANNELS,
    QUALITY_SIZE,
    SIGNAL_UNIT,
)
from seawatch.models.onnx_export import check_parity, export_onnx
from seawatch.models.plankton.model_cut import QUALITY_FILE, SEGMENTATION_TASK
from seawatch.models.segmentation.data import STRIDE
from seawatch.models.segmentation.network import QualityNet, SegNet, count_parameters

NAME, VERSION = "plankton-seg-unet", "0.1.0"
QUALITY_ONNX = "quality.onnx"


def _finish(net: SegNet) -> str:
    refine = (
        f"a {net.fine_width}-channel refinement at its working resolution"
        if net.fine_width
        else "no refinement (the head at half its working resolution, enlarged bilinearly)"
    )
    if net.downsample > 1:
        refine += f"; input average-pooled {net.downsample}x and maps enlarged back in the graph"
    return refine


def describe(net: SegNet, quality: QualityNet) -> str:
    """The architecture in one line, for the card."""
    return (
        f"SegNet: lean U-Net, stride-2 stem, levels {list(net.widths)} (conv-BN-ReLU, max-pool, "
        f"nearest upsampling + skips), {_finish(net)}, 1x1 head of 2 sigmoids "
        f"(foreground, centre-ness); {count_parameters(net):,} parameters. QualityNet: 4 conv "
        f"stages on {QUALITY_CHANNELS} x {QUALITY_SIZE} x {QUALITY_SIZE} instance windows, "
        f"regressing IoU; {count_parameters(quality):,} parameters"
    )


def export_graphs(net: SegNet, quality: QualityNet, out: Path) -> dict[str, float]:
    """Write both graphs into ``out`` and return their worst torch-vs-ONNX differences."""
    out.mkdir(parents=True, exist_ok=True)
    unit = max(STRIDE, net.stride)
    frame = torch.rand(2, 1, 2 * unit, 3 * unit) * 60
    export_onnx(
        net, out / ONNX_FILE, frame, input_names=("image",), output_names=("maps",), spatial=True
    )
    window = torch.rand(3, QUALITY_CHANNELS, QUALITY_SIZE, QUALITY_SIZE)
    export_onnx(quality, out / QUALITY_ONNX, window, input_names=("window",), output_names=("iou",))
    other = torch.rand(1, 1, 3 * unit, 4 * unit) * 60  # another size than the export's
    return {
        "segnet_max_abs_diff": check_parity(net, out / ONNX_FILE, other, atol=1e-4),
        "quality_max_abs_diff": check_parity(quality, out / QUALITY_ONNX, window, atol=1e-4),
    }


def write_card(
    out: Path,
    net: SegNet,
    quality: QualityNet,
    *,
    command: str,
    seed: int,
    steps: int,
    seconds: float,
    data: dict[str, Any],
    metrics: dict[str, Any],
    thresholds: dict[str, float],
    extra_files: dict[str, str] | None = None,
) -> ModelCard:
    """The card of the artifact in ``out`` (graphs already written)."""
    card = ModelCard(
        task=SEGMENTATION_TASK,
        name=NAME,
        version=VERSION,
        architecture=describe(net, quality),
        input=InputSpec(
            size=256,
            channels=1,
            mean=0.0,
            std=float(255.0 * SIGNAL_UNIT),  # x / 64 inside the graph
            preprocessing="seawatch.ingest.segment_model.model_input",
        ),
        output="maps",
        outputs=["maps"],
        files={QUALITY_FILE: QUALITY_ONNX, **(extra_files or {})},
        thresholds={
            "stride": float(max(STRIDE, net.stride)),
            "foreground": 0.5,
            "core": CORE_LEVEL,
            "merge": MERGE_LEVEL,
            **thresholds,
        },
        training=TrainingSummary(
            command=command,
            seed=seed,
            data=data,
            epochs=steps,
            seconds=round(seconds, 1),
            device="cpu",
        ),
        metrics=metrics,
        onnx_sha256=sha256_file(out / ONNX_FILE),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    card.write(out)
    return card


def write_split(model_dir: Path, core: float, merge: float, source: dict[str, Any]) -> ModelCard:
    """Set the centre-ness levels the daemon splits this network's maps at (the card's
    ``core`` and ``merge``, chosen after training on development frames) and record where
    they come from (``source``: seed, command, scores) under the card's ``metrics.split_levels``."""
    if not 0.0 < merge < core < 1.0:
        msg = f"need 0 < merge < core < 1 (two cores merge under their peaks); got {merge}, {core}"
        raise ValueError(msg)
    card = load_card(model_dir)
    thresholds = card.thresholds | {"core": float(core), "merge": float(merge)}
    metrics = card.metrics | {"split_levels": round_floats(source)}
    card = card.model_copy(update={"thresholds": thresholds, "metrics": metrics})
    card.write(model_dir)
    return card


def round_floats(value: Any, digits: int = 4) -> Any:
    """``value`` with every float rounded (for cards and results)."""
    if isinstance(value, float | np.floating):
        return round(float(value), digits)
    if isinstance(value, dict):
        return {k: round_floats(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [round_floats(v, digits) for v in value]
    return value


__all__ = [
    "NAME",
    "QUALITY_ONNX",
    "VERSION",
    "describe",
    "export_graphs",
    "round_floats",
    "write_card",
    "write_split",
]
