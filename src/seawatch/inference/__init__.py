"""Inference: backends behind one interface, batching, and task heads."""
