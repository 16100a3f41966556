"""The otolith anomaly detector: synthetic data, teacher-student networks, training, export."""
