"""What every training command shares: seeds, device choice and rich progress bars.

Imports torch: load it from training code only, never from the daemon's runtime.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from seawatch.contracts.errors import ConfigError


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def select_device(name: str = "auto") -> str:
    """Resolve ``auto`` / ``cpu`` / ``cuda`` / ``cuda:N`` to a device torch can use.

    ``auto`` takes CUDA when present, else the CPU. Asking for CUDA where there is none is a
    configuration error, not a silent fallback: a run meant for the GPU should not take hours
    on the CPU unnoticed.
    """
    name = name.strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return "cpu"
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            msg = f"--device {name}: torch sees no CUDA device here; use --device cpu or auto"
            raise ConfigError(msg)
        index = int(name.split(":", 1)[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            msg = f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present"
            raise ConfigError(msg)
        return name
    msg = f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N"
    raise ConfigError(msg)


def training_progress() -> Progress:
    """The progress display used by data generation, epochs and evaluation."""
    return Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    )


def log_line(progress: Progress, text: str) -> None:
    """Print ``text`` when the bars cannot render live (CI logs, pipes)."""
    if not progress.console.is_terminal:
        progress.console.print(text)


def optimise(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
) -> None:
    """One training step: clear the gradients, back-propagate ``loss``, step the optimiser and
    its learning-rate schedule."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    schedule.step()


__all__ = ["log_line", "optimise", "seed_everything", "select_device", "training_progress"]
