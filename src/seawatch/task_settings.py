"""The ``tasks:`` section of the settings: which tasks this daemon serves, with which model.

Each key is a task's registry name (the frames' ``task`` header and, by default, its topic
``frames.<name>``). A file or the environment changes only what it names: the built-in
tasks keep their defaults unless switched off (``tasks.otolith.enabled: false``, or
``SEAWATCH_TASKS__OTOLITH__ENABLED=false``). A task outside seawatch names its plug-in
(``plugin: mypackage.mytask:PLUGIN``); ``options`` are the task's own settings, checked by
its head at start.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from seawatch.contracts.frames import TASK_NAME


class TaskSettings(BaseModel):
    """One served task."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="false: this task's frames go to the DLQ")
    model_dir: Path | None = Field(None, description="the task's model artifact directory")
    model_store: Path | None = Field(
        None,
        description="a model store (versions side by side, `seawatch models promote`): the "
        "promoted version is served and a new promotion is swapped in live; wins over model_dir",
    )
    swap_max_drop: float = Field(
        0.02,
        ge=0,
        le=1,
        description="a new model is refused when its validation score is lower than the "
        "serving model's by more than this",
    )
    max_batch: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="model inputs per inference call; default inference.max_batch",
    )
    threads: Annotated[int, Field(ge=1, le=256)] | Literal["all"] | None = Field(
        None,
        description="intra-op threads of this task's model: a number, all (every core this "
        "process may use), or unset for inference.threads; otolith defaults to all (its "
        "preparation leaves the loop idle: 16.4 against 8.8 specimens/s on 2 cores)",
    )
    topic: str | None = Field(None, description="the task's frame topic; default frames.<task>")
    lane: str = Field(
        "main",
        pattern=r"^[a-z0-9_]{1,40}$",
        description="the lane (its own consumer and process under `seawatch run`) that serves "
        "this task: tasks in different lanes never wait for each other; otolith defaults to "
        "its own lane, every other task to main",
    )
    plugin: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="module:attribute of the TaskPlugin, for a task outside seawatch",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="the task's own settings (checked by its head): plankton top_k; otolith "
        "views (test-time views per specimen: 1, 4, 8, or auto = the card's measured choice "
        "for the backend); fish enrol_new, tracklets (true: a camera's sightings close in time "
        "decided as groups; false: each alone), shared_gallery (true: one gallery for every worker "
        "of the consumer group, on every host, in a compacted Kafka topic; false: a working "
        "file per process), gallery_topic (default <kafka.group_id>.fish-gallery), "
        "whole_frames (true: each frame is a whole tank frame, cut into one sighting per fish, "
        "right-facing fish mirrored; false, the default: each frame is one head-left crop), "
        "detector (with whole_frames: threshold, the default, the classical background "
        "detector; model, the fish segmentation network, which cuts touching fish apart) and "
        "detector_model_dir (default models/fish-segmentation: seawatch train "
        "fish-segmentation); threshold_by_gallery_size (true: the card's match threshold for "
        "the gallery's present size) and query_expansion (true: scores re-ranked by query "
        "expansion, at the card's threshold for them), both false by default",
    )

    def batch(self, default: int) -> int:
        """Model inputs per inference call: ``max_batch``, else ``default``."""
        return self.max_batch or default

    def threads_for(self, default: int) -> int:
        """The model's intra-op threads: ``threads`` (``all``: the process's cores), else
        ``default`` (``inference.threads``)."""
        if self.threads == "all":
            return len(os.sched_getaffinity(0))
        return self.threads or default

    def topic_for(self, name: str) -> str:
        """The topic this task's frames come from."""
        return self.topic or f"frames.{name}"


DEFAULT_TASKS: dict[str, dict[str, Any]] = {
    "plankton": {"model_dir": Path("models/plankton"), "options": {"top_k": 3}},
    # max_batch counts specimens: 8 specimens at 8 views = 64 images a call; views "auto" is
    # the card's measured choice for the backend (seawatch train otolith-views)
    # threads all: the loop waits on the model (measured, issue 26)
    # lane otolith: a batch of specimens holds no plankton or fish frame up (issue 26)
    "otolith": {
        "model_dir": Path("models/otolith"),
        "lane": "otolith",
        "max_batch": 8,
        "threads": "all",
        "options": {"views": "auto"},
    },
    "fish": {"model_dir": Path("models/fish"), "options": {"enrol_new": True}},
}


def merge_tasks(given: Any) -> Any:
    """The built-in defaults with ``given`` laid over them, task by task and field by field
    (``options`` merged key by key)."""
    if not isinstance(given, dict):
        return given
    merged: dict[str, Any] = {name: dict(fields) for name, fields in DEFAULT_TASKS.items()}
    for name, fields in given.items():
        if isinstance(fields, TaskSettings):
            fields = fields.model_dump(exclude_unset=True)
        if not isinstance(fields, dict):
            merged[name] = fields  # validation names the bad value
            continue
        base = merged.setdefault(name, {})
        options = {**base.get("options", {}), **fields.get("options", {})}
        base.update(fields)
        if options:
            base["options"] = options
    return merged


__all__ = ["DEFAULT_TASKS", "TASK_NAME", "TaskSettings", "merge_tasks"]
