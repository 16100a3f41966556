"""The configuration reference (``docs/configuration.md``), generated from the settings model.

Every field of :class:`~seawatch.config.Settings` becomes a table row: its YAML key, its
environment variable, a readable type with its constraints, its default (secrets never
shown) and its description; each section's docstring introduces its table. The output is
deterministic, so a test can compare it with the committed file.

``python -m seawatch.config_reference [--check] [--out docs/configuration.md]``
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
import types
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

from seawatch import config
from seawatch.config import ENV_PREFIX, Settings

DEFAULT_OUT = Path("docs/configuration.md")
SECRET = "(secret)"

_BOUNDS = (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"))
_SIMPLE = {bool: "bool", int: "int", float: "float", str: "string", Path: "path"}


def stale_message(path: Path = DEFAULT_OUT) -> str:
    """What ``--check`` says when ``path`` differs from the settings model."""
    return f"{path} is stale; run `seawatch config reference --out {path}`"


def _doc(obj: Any) -> str:
    """A docstring as Markdown paragraphs: reST roles and literals become code spans."""
    text = inspect.cleandoc(obj.__dict__.get("__doc__") or "") if obj is not None else ""
    text = re.sub(r":\w+:`~?(?:[\w.]+\.)?([^`]+)`", r"`\1`", text)
    text = text.replace("``", "`")
    paragraphs = [_escape_html(" ".join(p.split())) for p in text.split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


def _escape_html(text: str) -> str:
    """A ``<`` that would open an HTML tag (``<store>``), outside code spans, as ``&lt;``."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = re.sub(r"<(?=[A-Za-z/!?])", "&lt;", parts[i])
    return "`".join(parts)


def _cell(text: str) -> str:
    return _escape_html(" ".join(text.split())).replace("|", "\\|")


def _strip_annotated(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _members(tp: Any) -> tuple[Any, ...]:
    tp = _strip_annotated(tp)
    if get_origin(tp) in (Union, types.UnionType):
        return tuple(_strip_annotated(a) for a in get_args(tp))
    return (tp,)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _is_secret(tp: Any) -> bool:
    return SecretStr in _members(tp)


def _item_models(tp: Any) -> tuple[type[BaseModel], ...]:
    """The models a list field (or a mapping's values) holds (a discriminated union gives
    several), else ()."""
    tp = _strip_annotated(tp)
    if get_origin(tp) not in (list, dict):
        return ()
    members = _members(get_args(tp)[-1])
    return members if all(_is_model(m) for m in members) else ()


def _type_name(tp: Any) -> str:
    tp = _strip_annotated(tp)
    origin, args = get_origin(tp), get_args(tp)
    if tp is type(None):
        return "null"
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"map of {_type_name(args[0])} to {_type_name(args[1])}"
    if tp is SecretStr:
        return "secret"
    if _is_model(tp):
        return "object"
    return _SIMPLE.get(tp, getattr(tp, "__name__", str(tp)))


def _constraints(field: FieldInfo, tp: Any) -> list[str]:
    found = []
    for item in field.metadata:
        for attr, symbol in _BOUNDS:
            if getattr(item, attr, None) is not None:
                found.append(f"{symbol} {getattr(item, attr):_}".replace("_", ","))
        if getattr(item, "min_length", None) is not None:
            unit = "items" if get_origin(_strip_annotated(tp)) is list else "characters"
            least = item.min_length
            found.append("not empty" if least == 1 else f"at least {least} {unit}")
        if getattr(item, "pattern", None) is not None:
            found.append(f"matches `{item.pattern}`")
    return found


def _type(field: FieldInfo) -> str:
    tp = field.annotation
    models = _item_models(tp)
    if len(models) > 1 and all("kind" in m.model_fields for m in models):
        name = "list of rules"
    elif models:
        name = "list of objects"
    else:
        name = _type_name(tp)
    limits = _constraints(field, tp)
    return f"{name} ({', '.join(limits)})" if limits else name


def _size(value: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if value >= 1 << shift and value % (1 << shift) == 0:
            return f" ({value >> shift} {unit})"
    return ""


def _default(name: str, field: FieldInfo) -> str:
    if field.is_required():
        return "(required)"
    value = field.get_default(call_default_factory=True)
    if value is not None and _is_secret(field.annotation):
        return SECRET
    if _item_models(field.annotation) and value:
        names = [getattr(v, "name", None) for v in value]
        listed = f": {', '.join(names)}" if all(names) else ""
        return f"{len(value)} (below){listed}"
    shown = f"`{json.dumps(to_jsonable_python(value), ensure_ascii=False)}`"
    if isinstance(value, int) and not isinstance(value, bool) and name.endswith("_bytes"):
        shown += _size(value)
    return shown


def _env(dotted: str) -> str:
    return ENV_PREFIX + dotted.replace(".", "__").upper()


def _walk(
    model: type[BaseModel], prefix: str = ""
) -> Iterator[tuple[str, type[BaseModel], list[tuple[str, FieldInfo]]]]:
    """Each section depth first: its dotted prefix, its class, its own (non-section) fields."""
    leaves = [(n, f) for n, f in model.model_fields.items() if not _is_model(f.annotation)]
    yield prefix, model, leaves
    for name, field in model.model_fields.items():
        if _is_model(field.annotation):
            yield from _walk(field.annotation, f"{prefix}{name}.")


def _table(prefix: str, fields: list[tuple[str, FieldInfo]], *, env: bool = True) -> list[str]:
    head = "| key | environment variable | type | default | description |"
    rule = "|---|---|---|---|---|"
    if not env:
        head, rule = head.replace(" environment variable |", ""), rule[:-4]
    lines = [head, rule]
    for name, field in fields:
        dotted = f"{prefix}{name}"
        cells = [f"`{dotted}`"]
        if env:
            cells.append(f"`{_env(dotted)}`")
        cells += [_type(field), _default(name, field), field.description or ""]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def _item_sections(prefix: str, fields: list[tuple[str, FieldInfo]], level: int) -> list[str]:
    """Lists and mappings of objects (alert rules, webhooks, tasks): one small table per kind
    of item."""
    out: list[str] = []
    for name, field in fields:
        keyed = get_origin(_strip_annotated(field.annotation)) is dict
        for item in _item_models(field.annotation):
            kind = item.model_fields.get("kind")
            label = f"{prefix}{name}.<name>" if keyed else f"{prefix}{name}[]"
            if kind is not None:
                label += f" with kind {_type_name(kind.annotation)}"
            out += [f"{'#' * level} `{label}`", "", _doc(item), ""]
            out += [*_table("", list(item.model_fields.items()), env=False), ""]
    return out


def _intro(model: type[BaseModel]) -> list[str]:
    return [
        "# Configuration reference",
        "",
        "<!-- generated by `seawatch config reference`; do not edit -->",
        f"Generated by `seawatch config reference` from `{model.__module__}.{model.__name__}`;"
        " do not edit this file: change the model and run"
        f" `seawatch config reference --out {DEFAULT_OUT}` (a test fails when it is stale).",
        "",
        "## Where settings come from",
        "",
        _doc(config).split("\n\n", 1)[-1],  # the precedence, without the summary line
        "",
        "In the YAML file, keys nest by section (`storage.local.path` is `path` under `local`"
        " under `storage`). In the environment a list or an object is given as JSON, e.g."
        " `SEAWATCH_KAFKA__TOPICS='[\"frames.plankton\"]'`. Secrets (tokens, passwords) can be"
        " read from a file instead (`*_file` keys) and are never printed: "
        "`seawatch config show` masks them.",
        "",
    ]


def render_reference(model: type[BaseModel] = Settings) -> str:
    """The Markdown reference of ``model``: one section per settings section, one row a field."""
    lines = _intro(model)
    for prefix, section, leaves in _walk(model):
        if not leaves:
            continue
        level = 1 + prefix.count(".") if prefix else 2
        title = f"`{prefix.rstrip('.')}`" if prefix else "Top level"
        lines += [f"{'#' * level} {title}", ""]
        if _doc(section):
            lines += [_doc(section), ""]
        lines += [*_table(prefix, leaves), ""]
        lines += _item_sections(prefix, leaves, level + 1)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write (``--out``), print, or ``--check`` the reference; 1 when the file is stale."""
    parser = argparse.ArgumentParser(
        prog="seawatch config reference",
        description="The configuration reference in Markdown, generated from the settings.",
    )
    parser.add_argument("--out", type=Path, help=f"file to write (or check; default {DEFAULT_OUT})")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render_reference()
    if args.check:
        path = args.out or DEFAULT_OUT
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            print(stale_message(path), file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    if args.out is None:
        sys.stdout.write(text)
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
