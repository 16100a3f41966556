"""seawatch: a streaming in-situ monitoring daemon for marine biology.

Frames arrive on Kafka, are decoded and segmented, classified by ONNX Runtime (TensorRT
later), and the per-frame results are written to a local store and to InfluxDB.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
