"""The task registry: task name -> :class:`~seawatch.contracts.task.TaskPlugin`.

The built-in tasks are found by name in ``seawatch.models.<task>.head`` (imported only when
asked for, so a daemon that serves plankton alone never imports the fish code). A task from
outside seawatch arrives either by :func:`register` (a program that embeds the daemon, or a
test) or by its settings (``tasks.<name>.plugin: package.module:PLUGIN``). The pipeline never
names a task: it serves whatever heads :func:`load_heads` built from ``tasks:``.
"""

from __future__ import annotations

import importlib
import logging

from seawatch.config import Settings
from seawatch.contracts.errors import ConfigError
from seawatch.contracts.task import TaskHead, TaskPlugin
from seawatch.inference.model_store import serving_dir

log = logging.getLogger(__name__)

BUILTIN = {
    "plankton": "seawatch.models.plankton.head:PLUGIN",
    "otolith": "seawatch.models.otolith.head:PLUGIN",
    "fish": "seawatch.models.fish.head:PLUGIN",
}
_registered: dict[str, TaskPlugin] = {}


def register(plugin: TaskPlugin) -> TaskPlugin:
    """Add ``plugin`` to the registry (replacing one of the same name); return it."""
    if not isinstance(plugin, TaskPlugin):
        msg = f"register() takes a TaskPlugin, got {type(plugin).__name__}"
        raise TypeError(msg)
    _registered[plugin.name] = plugin
    return plugin


def unregister(name: str) -> None:
    """Remove a registered plug-in (the built-ins stay findable by name)."""
    _registered.pop(name, None)


def names() -> list[str]:
    """Every task the registry knows: the built-ins and the registered ones."""
    return sorted({*BUILTIN, *_registered})


def plugin(name: str, spec: str | None = None) -> TaskPlugin:
    """The plug-in of task ``name``: registered, named by ``spec`` (``module:attribute``) or
    built in, in that order."""
    if name in _registered and spec is None:
        return _registered[name]
    spec = spec or BUILTIN.get(name)
    if spec is None:
        msg = (
            f"task {name!r} has no plug-in; known tasks: {', '.join(names())}. Set "
            f"tasks.{name}.plugin to the module:attribute of its TaskPlugin"
        )
        raise ConfigError(msg)
    found = _import(name, spec)
    if found.name != name:
        msg = f"tasks.{name}.plugin {spec} is the plug-in of task {found.name!r}, not {name!r}"
        raise ConfigError(msg)
    return found


def load_heads(settings: Settings) -> list[TaskHead]:
    """Build the head of every enabled task from its settings (a bad one fails here, before
    anything connects); on failure the heads built so far are closed."""
    heads: list[TaskHead] = []
    try:
        for name, task in settings.enabled_tasks().items():
            if task.model_store is not None:  # the promoted release of the store
                task = task.model_copy(update={"model_dir": serving_dir(task.model_store)})
            head = plugin(name, task.plugin).load(task, settings.for_task(name))
            if head.name != name:
                msg = f"the plug-in of task {name!r} built a head for {head.name!r}"
                raise ConfigError(msg)
            heads.append(head)
    except BaseException:
        for head in heads:
            head.close()
        raise
    if not heads:
        msg = "no task is enabled; enable at least one in the tasks section"
        raise ConfigError(msg)
    return heads


def _import(name: str, spec: str) -> TaskPlugin:
    module_name, _, attribute = spec.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        msg = f"tasks.{name}.plugin {spec!r} cannot be loaded ({exc}); check the module path"
        raise ConfigError(msg) from exc
    if not isinstance(found, TaskPlugin):
        msg = f"tasks.{name}.plugin {spec!r} is a {type(found).__name__}, not a TaskPlugin"
        raise ConfigError(msg)
    return found


__all__ = ["BUILTIN", "load_heads", "names", "plugin", "register", "unregister"]
