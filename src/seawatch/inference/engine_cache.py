"""Where TensorRT engines live beside their model, and when one must be rebuilt.

An engine is only valid for the GPU it was built on (model and compute capability), the
TensorRT version that built it, its precision, its optimisation profile (min/opt/max batch)
and the exact ONNX graph. :class:`EngineKey` holds those parts; its file stem names the
engine in ``<model_dir>/engines/`` (``<stem>.plan``) and a JSON sidecar (``<stem>.json``)
records the parts, the plan's own SHA-256 and the parity check it passed. A lookup hits only
when the plan and a sidecar that agrees with the key on every part are both there and the
engine passed its parity check; anything else (no file, an unreadable or mismatched sidecar,
a truncated plan, no parity record) means rebuild.

No TensorRT or GPU is needed here: the key is plain values, so it is unit-tested anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ENGINES_DIR = "engines"
SIDECAR_VERSION = 1


@dataclass(frozen=True)
class EngineKey:
    """Everything a serialized TensorRT engine depends on."""

    gpu_name: str
    compute_capability: str
    tensorrt_version: str
    precision: str
    min_batch: int
    opt_batch: int
    max_batch: int
    input_shape: tuple[int, ...]
    onnx_sha256: str

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            msg = (
                "engine profile needs 1 <= min <= opt <= max batch, got "
                f"{self.min_batch}/{self.opt_batch}/{self.max_batch}"
            )
            raise ValueError(msg)
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))

    def parts(self) -> dict[str, Any]:
        """The key as JSON-ready values (what the sidecar stores)."""
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        return data

    @classmethod
    def from_parts(cls, data: dict[str, Any]) -> EngineKey:
        """Rebuild a key from :meth:`parts`; raise ValueError/TypeError/KeyError if malformed."""
        names = set(cls.__dataclass_fields__)
        if set(data) != names:
            msg = f"engine key parts {sorted(data)} != {sorted(names)}"
            raise ValueError(msg)
        return cls(**{**data, "input_shape": tuple(data["input_shape"])})

    def digest(self) -> str:
        """SHA-256 over every part, in a canonical JSON form."""
        canonical = json.dumps(self.parts(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def stem(self) -> str:
        """A readable, unique file stem: GPU, capability, TensorRT, precision, profile, digest."""
        return (
            f"{_slug(self.gpu_name)}-sm{self.compute_capability.replace('.', '')}"
            f"-trt{self.tensorrt_version}-{self.precision}"
            f"-b{self.min_batch}-{self.opt_batch}-{self.max_batch}-{self.digest()[:16]}"
        )


@dataclass(frozen=True)
class CacheLookup:
    """The outcome of a lookup: ``hit`` or the reason a rebuild is needed."""

    hit: bool
    reason: str
    plan_path: Path
    sidecar_path: Path
    record: dict[str, Any] = field(default_factory=dict)


class EngineCache:
    """The ``engines/`` folder of one model artifact."""

    def __init__(self, model_dir: Path) -> None:
        self.directory = Path(model_dir) / ENGINES_DIR

    def plan_path(self, key: EngineKey) -> Path:
        return self.directory / f"{key.stem()}.plan"

    def sidecar_path(self, key: EngineKey) -> Path:
        return self.directory / f"{key.stem()}.json"

    def timing_cache_path(self, gpu_name: str, compute_capability: str, trt_version: str) -> Path:
        """The persistent timing cache: one per GPU model, capability and TensorRT version
        (TensorRT rejects a cache from another version or device anyway)."""
        cc = compute_capability.replace(".", "")
        return self.directory / f"timing-{_slug(gpu_name)}-sm{cc}-trt{trt_version}.cache"

    def lookup(self, key: EngineKey) -> CacheLookup:
        """Hit only when the plan exists and its sidecar matches ``key`` and the plan's hash."""
        plan, sidecar = self.plan_path(key), self.sidecar_path(key)

        def miss(reason: str, record: dict[str, Any] | None = None) -> CacheLookup:
            return CacheLookup(False, reason, plan, sidecar, record or {})

        if not plan.is_file():
            return miss(f"no engine at {plan.name}")
        if not sidecar.is_file():
            return miss(f"engine {plan.name} has no sidecar {sidecar.name}")
        try:
            record = json.loads(sidecar.read_text())
            stored = EngineKey.from_parts(record["key"])
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            return miss(f"sidecar {sidecar.name} is unreadable ({type(exc).__name__}: {exc})")
        if stored != key:
            changed = ", ".join(
                f"{name} {stored.parts()[name]!r} != {value!r}"
                for name, value in key.parts().items()
                if stored.parts()[name] != value
            )
            return miss(f"sidecar {sidecar.name} was written for another key ({changed})", record)
        try:
            actual = hashlib.sha256(plan.read_bytes()).hexdigest()
        except OSError as exc:
            return miss(f"engine {plan.name} is unreadable: {exc}", record)
        if actual != record.get("plan_sha256"):
            return miss(f"engine {plan.name} does not match its sidecar's sha256", record)
        parity = record.get("parity")
        if not isinstance(parity, dict) or parity.get("passed") is not True:
            return miss(f"engine {plan.name} has not passed a parity check", record)
        return CacheLookup(True, "cached engine matches", plan, sidecar, record)

    def store(self, key: EngineKey, plan: bytes, **extra: Any) -> Path:
        """Write the plan and then its sidecar (both atomically); return the plan path."""
        record = {
            "version": SIDECAR_VERSION,
            "key": key.parts(),
            "plan_sha256": hashlib.sha256(plan).hexdigest(),
            "plan_bytes": len(plan),
            **extra,
        }
        _write_atomic(self.plan_path(key), plan)
        _write_atomic(self.sidecar_path(key), (json.dumps(record, indent=2) + "\n").encode())
        return self.plan_path(key)

    def update_record(self, key: EngineKey, **extra: Any) -> None:
        """Add fields (e.g. the parity result) to an engine's sidecar."""
        path = self.sidecar_path(key)
        record = {**json.loads(path.read_text()), **extra}
        _write_atomic(path, (json.dumps(record, indent=2) + "\n").encode())

    def discard(self, key: EngineKey) -> None:
        """Remove an engine and its sidecar (a refused engine must not be picked up later)."""
        for path in (self.plan_path(key), self.sidecar_path(key)):
            path.unlink(missing_ok=True)

    def read_timing_cache(self, path: Path) -> bytes:
        """The serialized timing cache, or empty bytes (TensorRT then starts a new one)."""
        try:
            return path.read_bytes()
        except OSError:
            return b""

    def write_timing_cache(self, path: Path, data: bytes) -> None:
        _write_atomic(path, data)


def _slug(text: str) -> str:
    """``NVIDIA GeForce RTX 4090`` -> ``nvidia-geforce-rtx-4090``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "gpu"


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = ["ENGINES_DIR", "CacheLookup", "EngineCache", "EngineKey"]
