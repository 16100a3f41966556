"""The one exception tree of seawatch.

    SeawatchError
    ├── ConfigError        bad settings; raised at start, names the field and the fix
    ├── FrameError         one unusable frame; carries the stage and field, goes to the DLQ
    ├── BackendError       an inference backend cannot load or run a model
    ├── StorageError       a sink cannot write durably
    └── BrokerError        the Kafka broker cannot be reached or started

Messages state the rule, the value received and how to fix it.
"""

from __future__ import annotations


class SeawatchError(Exception):
    """Root of every error seawatch raises on purpose."""


class ConfigError(SeawatchError):
    """A setting is invalid; raised before anything connects."""


class FrameError(SeawatchError):
    """A frame cannot be used; the pipeline sends it to the dead-letter topic.

    ``stage`` is where it failed (headers, fetch, decode, segment, infer) and ``field`` the
    header or property at fault, when there is one.
    """

    def __init__(self, stage: str, reason: str, field: str | None = None) -> None:
        self.stage = stage
        self.field = field
        self.reason = reason
        where = f"{stage}:{field}" if field else stage
        super().__init__(f"[{where}] {reason}")


class BackendError(SeawatchError):
    """An inference backend cannot load or run a model."""


class StorageError(SeawatchError):
    """A sink failed to store records durably."""


class BrokerError(SeawatchError):
    """The Kafka broker cannot be reached or the embedded broker cannot start."""


__all__ = [
    "BackendError",
    "BrokerError",
    "ConfigError",
    "FrameError",
    "SeawatchError",
    "StorageError",
]
