"""The model card: what a model artifact is, how it was made and how well it does.

A model artifact is a directory holding ``model.onnx`` (dynamic batch axis) and
``card.json``, validated by :class:`ModelCard`. The card is written by training and read by
the daemon; it needs no torch. A version number alone does not identify weights (retrained
weights have kept one), so the card's :attr:`ModelCard.release` is the semantic version plus
the first eight hex digits of the graph's SHA-256 (``0.3.0+3f9a1c2e``): the version every
record and every InfluxDB point carries.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    computed_field,
    field_validator,
    model_validator,
)

from seawatch.contracts.errors import ConfigError
from seawatch.contracts.frames import TASK_NAME
from seawatch.contracts.ranking import RankingCalibration

CARD_FILE = "card.json"
ONNX_FILE = "model.onnx"
HASH_DIGITS = 8  # hex digits of the graph's SHA-256 in a release


class InputSpec(BaseModel):
    """The graph input: NCHW float32, values 0..255, normalised inside the graph."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "image"
    size: int = Field(gt=0, description="square side in pixels (non-square: the longer side)")
    height: int = Field(gt=0, description="input height in pixels; defaults to size")
    width: int = Field(gt=0, description="input width in pixels; defaults to size")
    channels: Literal[1, 3] = 1
    layout: Literal["NCHW"] = "NCHW"
    value_range: tuple[float, float] = (0.0, 255.0)
    mean: float | tuple[float, ...] = Field(
        description="normalisation inside the graph: (x/255-mean)/std, one value or one a channel"
    )
    std: float | tuple[float, ...]
    preprocessing: str = "seawatch.contracts.preprocess.prepare_roi"

    @model_validator(mode="before")
    @classmethod
    def _square_by_default(cls, data: Any) -> Any:
        """Cards without ``height``/``width`` describe a square ``size`` x ``size`` input."""
        if isinstance(data, dict) and "size" in data:
            data = {"height": data["size"], "width": data["size"], **data}
        return data


class TrainingSummary(BaseModel):
    """How the model was made: command, seed, data, schedule, time."""

    model_config = ConfigDict(frozen=True, extra="allow")

    command: str
    seed: int
    data: dict[str, Any]
    epochs: int
    seconds: float
    device: str


class ModelCard(BaseModel):
    """Everything the daemon and a reader need to know about one model artifact."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str = Field(pattern=TASK_NAME, description="the task's registry name")
    name: str
    version: str
    architecture: str
    input: InputSpec
    output: str = Field("probs", description="the graph's main output")
    outputs: list[str] = Field(
        default_factory=list, description="all graph outputs in order, when there are several"
    )
    files: dict[str, str] = Field(
        default_factory=dict, description="other files of the artifact (role -> file name)"
    )
    class_names: list[str] = Field(default_factory=list)
    thresholds: dict[str, float] = Field(default_factory=dict)
    thresholds_by_gallery_size: dict[str, list[tuple[int, float]]] | None = Field(
        None,
        description="per threshold name, (gallery size, threshold) pairs for the same target "
        "rate on a gallery of that many individuals (fish: `seawatch evaluate fish "
        "--calibrate-sizes`); None: the single threshold for any gallery",
    )
    training: TrainingSummary
    metrics: dict[str, Any] = Field(default_factory=dict)
    ranking: dict[str, Any] | None = Field(
        None,
        description="the fitted 'most likely wrong' score (RankingCalibration.to_dict), "
        "written by `seawatch train plankton-ranking`; None: the least-confidence fallback",
    )
    ood: dict[str, Any] | None = Field(
        None,
        description="the out-of-distribution score (file, sha256, method, k, threshold, how "
        "it was calibrated; seawatch.contracts.ood), written by `seawatch train plankton-ood`; "
        "None: the softmax threshold alone decides unknown",
    )
    onnx_sha256: str
    created_at: str

    @field_validator("ranking")
    @classmethod
    def _ranking_reads(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """A card's ranking calibration must be one this version can score with."""
        if value is not None:
            RankingCalibration.from_dict(value)
        return value

    def ranking_calibration(self) -> RankingCalibration | None:
        """The card's fitted ranking score, or None (the fallback ranks: ``wrongness_of``)."""
        return None if self.ranking is None else RankingCalibration.from_dict(self.ranking)

    @model_validator(mode="before")
    @classmethod
    def _release_is_derived(cls, data: Any) -> Any:
        """``release`` in a card file is derived, not read: it must agree with the hash."""
        if isinstance(data, dict) and "release" in data:
            data = dict(data)
            given = data.pop("release")
            expected = f"{data.get('version')}+{str(data.get('onnx_sha256', ''))[:HASH_DIGITS]}"
            if given != expected:
                msg = f"card release {given!r} does not match version + graph hash {expected!r}"
                raise ValueError(msg)
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def release(self) -> str:
        """Semantic version + short content hash of the weights: ``0.3.0+3f9a1c2e``."""
        return f"{self.version}+{self.onnx_sha256[:HASH_DIGITS]}"

    def write(self, directory: Path) -> Path:
        """Write ``card.json`` into ``directory`` and return its path."""
        path = Path(directory) / CARD_FILE
        path.write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n")
        return path


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, to tie a card to its ONNX graph."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_card(directory: Path) -> ModelCard:
    """Read and validate the card of a model artifact; check it matches its ONNX file."""
    directory = Path(directory)
    card_path, onnx_path = directory / CARD_FILE, directory / ONNX_FILE
    if not card_path.is_file() or not onnx_path.is_file():
        msg = (
            f"model artifact {directory} must hold {CARD_FILE} and {ONNX_FILE}; "
            "build one with `make models` or `seawatch train plankton`"
        )
        raise ConfigError(msg)
    card = ModelCard.model_validate_json(card_path.read_text())
    actual = sha256_file(onnx_path)
    if actual != card.onnx_sha256:
        msg = (
            f"{onnx_path} does not match its card (sha256 {actual[:12]} != "
            f"{card.onnx_sha256[:12]}); re-export the model or fix the card"
        )
        raise ConfigError(msg)
    return card


__all__ = [
    "CARD_FILE",
    "HASH_DIGITS",
    "ONNX_FILE",
    "InputSpec",
    "ModelCard",
    "TrainingSummary",
    "load_card",
]
