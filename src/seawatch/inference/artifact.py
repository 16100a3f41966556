"""Opening a task's model artifact: find the directory, read and check its card, open the
backend the settings ask for. Every task plug-in loads its model through here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seawatch.config import InferenceSettings, resolve_model_dir
from seawatch.contracts.card import ONNX_FILE, ModelCard, load_card
from seawatch.contracts.errors import ConfigError
from seawatch.inference.backend import Backend
from seawatch.inference.factory import open_backend
from seawatch.inference.parity import InputMaker


@dataclass(frozen=True, slots=True)
class Artifact:
    """An opened model artifact: where it is, its card and the backend that runs it."""

    directory: Path
    card: ModelCard
    backend: Backend


def open_artifact(
    task: str,
    model_dir: Path | None,
    inference: InferenceSettings,
    *,
    max_batch: int,
    sample_inputs: InputMaker | None = None,
) -> Artifact:
    """Open the model of ``task`` at ``model_dir``; refuse a card made for another task.
    ``sample_inputs`` (the task's) feeds the parity check of a newly built engine."""
    if model_dir is None:
        msg = f"tasks.{task}.model_dir is not set; give the model artifact directory"
        raise ConfigError(msg)
    directory = resolve_model_dir(Path(model_dir))
    card = load_card(directory)
    if card.task != task:
        msg = (
            f"tasks.{task}.model_dir {directory} holds a {card.task!r} model ({card.name}); "
            f"point it at a {task} model"
        )
        raise ConfigError(msg)
    backend = open_backend(
        inference.backend,
        directory / ONNX_FILE,
        threads=inference.threads,
        max_batch=max_batch,
        sample_inputs=sample_inputs,
    )
    return Artifact(directory, card, backend)


__all__ = ["Artifact", "open_artifact"]
