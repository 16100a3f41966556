"""The engine cache key and the rebuild decision, without TensorRT or a GPU."""

from __future__ import annotations

import dataclasses
import json

import pytest

from seawatch.inference.engine_cache import EngineCache, EngineKey

KEY = EngineKey(
    gpu_name="NVIDIA GeForce RTX 4090",
    compute_capability="8.9",
    tensorrt_version="10.3.0",
    precision="fp16",
    min_batch=1,
    opt_batch=64,
    max_batch=64,
    input_shape=(1, 64, 64),
    onnx_sha256="a" * 64,
)
PASSED = {"passed": True, "samples": 64, "top1_agreement": 1.0, "max_abs_diff": 1e-3}

CHANGES = {
    "gpu_name": "NVIDIA A100-SXM4-80GB",
    "compute_capability": "8.6",
    "tensorrt_version": "10.3.1",
    "precision": "fp32",
    "min_batch": 2,
    "opt_batch": 32,
    "max_batch": 128,
    "input_shape": (3, 64, 64),
    "onnx_sha256": "b" * 64,
}


def test_every_part_of_the_key_is_covered_by_a_change():
    assert set(CHANGES) == {f.name for f in dataclasses.fields(EngineKey)}


@pytest.mark.parametrize("part", sorted(CHANGES))
def test_changing_any_part_changes_the_key_and_misses_the_cache(tmp_path, part):
    changed = dataclasses.replace(KEY, **{part: CHANGES[part]})
    assert changed.digest() != KEY.digest()
    assert changed.stem() != KEY.stem()
    cache = EngineCache(tmp_path)
    cache.store(KEY, b"plan-bytes", parity=PASSED)
    lookup = cache.lookup(changed)
    assert not lookup.hit
    assert cache.lookup(KEY).hit


def test_unchanged_key_hits_and_the_files_sit_beside_the_model(tmp_path):
    cache = EngineCache(tmp_path)
    path = cache.store(KEY, b"plan-bytes", parity=PASSED)
    assert path == tmp_path / "engines" / f"{KEY.stem()}.plan"
    assert path.read_bytes() == b"plan-bytes"
    same = EngineKey(**{**KEY.parts(), "input_shape": (1, 64, 64)})
    lookup = cache.lookup(same)
    assert lookup.hit, lookup.reason
    assert lookup.record["key"] == KEY.parts()
    assert KEY.stem().startswith("nvidia-geforce-rtx-4090-sm89-trt10.3.0-fp16-b1-64-64-")


def test_no_engine_or_no_sidecar_is_a_miss(tmp_path):
    cache = EngineCache(tmp_path)
    assert "no engine" in cache.lookup(KEY).reason
    cache.store(KEY, b"plan", parity=PASSED)
    cache.sidecar_path(KEY).unlink()
    assert "no sidecar" in cache.lookup(KEY).reason


@pytest.mark.parametrize(
    "sidecar",
    [b"{not json", b"[]", b'{"key": {"gpu_name": "x"}}', b'{"key": null}', b"\xff\xfe"],
)
def test_a_corrupt_sidecar_forces_a_rebuild(tmp_path, sidecar):
    cache = EngineCache(tmp_path)
    cache.store(KEY, b"plan", parity=PASSED)
    cache.sidecar_path(KEY).write_bytes(sidecar)
    lookup = cache.lookup(KEY)
    assert not lookup.hit
    assert "unreadable" in lookup.reason


def test_a_sidecar_written_for_another_key_forces_a_rebuild_naming_the_part(tmp_path):
    cache = EngineCache(tmp_path)
    cache.store(KEY, b"plan", parity=PASSED)
    record = json.loads(cache.sidecar_path(KEY).read_text())
    record["key"]["tensorrt_version"] = "10.0.1"
    cache.sidecar_path(KEY).write_text(json.dumps(record))
    lookup = cache.lookup(KEY)
    assert not lookup.hit
    assert "tensorrt_version '10.0.1' != '10.3.0'" in lookup.reason


def test_a_truncated_plan_forces_a_rebuild(tmp_path):
    cache = EngineCache(tmp_path)
    cache.store(KEY, b"plan-bytes", parity=PASSED)
    cache.plan_path(KEY).write_bytes(b"plan")
    assert "sha256" in cache.lookup(KEY).reason


def test_an_engine_without_a_passed_parity_check_is_not_used(tmp_path):
    cache = EngineCache(tmp_path)
    cache.store(KEY, b"plan")
    assert "parity" in cache.lookup(KEY).reason
    cache.update_record(KEY, parity={**PASSED, "passed": False})
    assert not cache.lookup(KEY).hit
    cache.update_record(KEY, parity=PASSED)
    assert cache.lookup(KEY).hit
    cache.discard(KEY)
    assert not cache.plan_path(KEY).exists() and not cache.sidecar_path(KEY).exists()


def test_timing_cache_is_per_gpu_and_tensorrt_version_not_per_precision(tmp_path):
    cache = EngineCache(tmp_path)
    path = cache.timing_cache_path("NVIDIA L4", "8.9", "10.3.0")
    assert path.parent == tmp_path / "engines"
    assert path != cache.timing_cache_path("NVIDIA L4", "8.9", "11.0.0")
    assert path != cache.timing_cache_path("NVIDIA T4", "7.5", "10.3.0")
    assert cache.read_timing_cache(path) == b""
    cache.write_timing_cache(path, b"timings")
    assert cache.read_timing_cache(path) == b"timings"


@pytest.mark.parametrize("profile", [(0, 1, 1), (2, 1, 4), (1, 8, 4)])
def test_an_impossible_profile_is_refused(profile):
    low, opt, high = profile
    with pytest.raises(ValueError, match="min <= opt <= max"):
        dataclasses.replace(KEY, min_batch=low, opt_batch=opt, max_batch=high)
