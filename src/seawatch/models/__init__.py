"""Models: network definitions, synthetic data, training, export and model cards.

Everything under ``seawatch.models`` that imports torch is loaded lazily by the CLI; the
synthetic generators and the model card need only numpy and OpenCV.
"""
