"""The contracts every stage shares: the frame, its records, the model card, objects and their
morphometrics, frame quality, the model-input rules, evidence names, the task interface and
the one exception tree.

This package is the ground floor: it imports nothing else from seawatch, and every stage
(ingest, inference, storage, alerts) and every task plug-in imports it instead of each other.
"""
