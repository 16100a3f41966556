"""Ingest: Kafka source and producer, embedded broker, decoding and segmentation."""
