"""A fish model card with no model behind it, for tests of the head and its thresholds."""

from __future__ import annotations

from seawatch.contracts.card import InputSpec, ModelCard, TrainingSummary

THRESHOLDS = {"match_similarity": 0.5, "target_false_match_rate": 0.01}


def fake_fish_card(
    *,
    dim: int,
    thresholds: dict | None = None,
    by_gallery_size: list | None = None,
    task: str = "fish",
) -> ModelCard:
    """A card for ``dim``-d embeddings of 16 x 32 inputs; ``by_gallery_size``: the match
    threshold's table per gallery size (None: the card has none)."""
    return ModelCard(
        task=task,  # type: ignore[arg-type]
        name="test-fish",
        version="0",
        architecture="fake",
        input=InputSpec(size=32, height=16, width=32, channels=3, mean=0.5, std=0.25),
        output="embedding",
        thresholds=THRESHOLDS if thresholds is None else thresholds,
        thresholds_by_gallery_size=(
            None if by_gallery_size is None else {"match_similarity": by_gallery_size}
        ),
        training=TrainingSummary(
            command="test", seed=0, data={}, epochs=1, seconds=0, device="cpu"
        ),
        metrics={"embedding_dim": dim},
        onnx_sha256="0" * 64,
        created_at="2024-01-01T00:00:00+00:00",
    )
