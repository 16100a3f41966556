"""CUDA device queries and device memory without pycuda: ``cuda-python``'s runtime bindings
(``cuda.bindings.runtime``, or ``cuda.cudart`` in cuda-python < 12.6), else torch's CUDA
tensors when torch is installed with CUDA. Imported only by the GPU backends."""

from __future__ import annotations

from typing import Any

import numpy as np

from seawatch.contracts.errors import BackendError
from seawatch.inference.precision import GpuInfo

_INSTALL = "install the GPU extra (`pip install 'seawatch[gpu]'`: tensorrt, cuda-python)"


def _cudart() -> Any | None:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6
        except ImportError:
            return None
    return cudart


def _check(result: tuple[Any, ...], what: str) -> Any:
    error, *values = result
    if int(error) != 0:
        msg = f"CUDA {what} failed: {error}"
        raise BackendError(msg)
    return values[0] if len(values) == 1 else tuple(values)


def gpu_info(device: int = 0) -> GpuInfo:
    """Name and compute capability of CUDA device ``device``; BackendError if there is none."""
    cudart = _cudart()
    if cudart is not None:
        count = _check(cudart.cudaGetDeviceCount(), "cudaGetDeviceCount")
        if count <= device:
            msg = f"no CUDA device {device} ({count} found)"
            raise BackendError(msg)
        props = _check(cudart.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
        name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        return GpuInfo(name.rstrip("\x00"), int(props.major), int(props.minor))
    try:
        import torch
    except ImportError:
        msg = f"neither cuda-python nor torch is installed to reach the GPU; {_INSTALL}"
        raise BackendError(msg) from None
    if not torch.cuda.is_available():
        msg = "no CUDA device visible to torch (torch.cuda.is_available() is False)"
        raise BackendError(msg)
    props = torch.cuda.get_device_properties(device)
    return GpuInfo(props.name, int(props.major), int(props.minor))


class DeviceMemory:
    """Device buffers, a stream and host<->device copies, by raw pointer."""

    def __init__(self) -> None:
        self._cudart = _cudart()
        self._tensors: dict[int, Any] = {}
        if self._cudart is None:
            try:
                import torch
            except ImportError:
                msg = f"device buffers need cuda-python or torch with CUDA; {_INSTALL}"
                raise BackendError(msg) from None
            if not torch.cuda.is_available():
                raise BackendError("torch sees no CUDA device for the device buffers")
            self._torch = torch
            self._stream_obj = torch.cuda.Stream()
            self.stream = int(self._stream_obj.cuda_stream)
        else:
            self.stream = int(_check(self._cudart.cudaStreamCreate(), "cudaStreamCreate"))

    def alloc(self, nbytes: int) -> int:
        if self._cudart is not None:
            return int(_check(self._cudart.cudaMalloc(max(nbytes, 1)), "cudaMalloc"))
        tensor = self._torch.empty(max(nbytes, 1), dtype=self._torch.uint8, device="cuda")
        self._tensors[tensor.data_ptr()] = tensor
        return int(tensor.data_ptr())

    def free(self, pointer: int) -> None:
        if self._cudart is not None:
            _check(self._cudart.cudaFree(pointer), "cudaFree")
        else:
            self._tensors.pop(pointer, None)

    def to_device(self, pointer: int, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array)
        if self._cudart is not None:
            kind = self._cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
            _check(
                self._cudart.cudaMemcpyAsync(
                    pointer, array.ctypes.data, array.nbytes, kind, self.stream
                ),
                "cudaMemcpyAsync (host to device)",
            )
            # The host array must outlive the copy: synchronise before it can be freed.
            self.synchronize()
            return
        source = self._torch.from_numpy(array.reshape(-1).view(np.uint8))
        with self._torch.cuda.stream(self._stream_obj):
            self._tensors[pointer][: array.nbytes].copy_(source)

    def to_host(self, array: np.ndarray, pointer: int) -> None:
        if self._cudart is not None:
            kind = self._cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
            _check(
                self._cudart.cudaMemcpyAsync(
                    array.ctypes.data, pointer, array.nbytes, kind, self.stream
                ),
                "cudaMemcpyAsync (device to host)",
            )
            return
        with self._torch.cuda.stream(self._stream_obj):
            data = self._tensors[pointer][: array.nbytes].cpu()
        array.reshape(-1).view(np.uint8)[:] = data.numpy()

    def synchronize(self) -> None:
        if self._cudart is not None:
            _check(self._cudart.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")
        else:
            self._stream_obj.synchronize()

    def close(self) -> None:
        for pointer in list(self._tensors):
            self.free(pointer)
        if self._cudart is not None and self.stream:
            self._cudart.cudaStreamDestroy(self.stream)
            self.stream = 0


__all__ = ["DeviceMemory", "gpu_info"]
