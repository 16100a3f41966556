"""A renderer for the small subset of Helm (Go templates + Sprig) that the seawatch chart uses.

No helm binary is installable here (not in Debian bookworm, not on PyPI or npm), so the tests
render ``deploy/helm/seawatch`` with this module and validate the manifests themselves. It is
strict on purpose: anything outside the subset raises :class:`TemplateError` instead of
rendering something Helm would render differently.

Supported:

- data: ``.Values`` (``values.yaml`` deep-merged with overrides as ``-f``/``--set`` do; a
  ``null`` override deletes the key), ``.Release.Name``, ``.Release.Namespace``,
  ``.Release.Service``, ``.Chart.Name``, ``.Chart.Version``, ``.Chart.AppVersion``; ``.``,
  ``$``, ``$var`` and field chains on them. A missing key of a map is nil (prints as
  nothing); a field of nil, or an unknown field of ``.Release``/``.Chart``/the root, raises.
- actions: ``{{ pipeline }}``, ``{{- ... -}}`` trimming, ``{{/* comments */}}``,
  ``if``/``else if``/``else``/``end``, ``with``/``else``, ``range`` (lists and maps, map keys
  sorted, with ``$v :=`` or ``$k, $v :=``), ``$x := pipeline``, ``define``, ``template``.
- functions: ``include``, ``quote``, ``default``, ``toYaml``, ``nindent``, ``indent``,
  ``trunc``, ``trimSuffix``, ``b64enc``, ``sha256sum``, ``required``, ``printf`` (``%s``
  ``%v`` ``%q`` ``%%``), ``eq``, ``ne`` (strings, bools, nil), ``and``, ``or``, ``not``, ``int``.
  Numbers from values are float64 under Helm, so ``printf "%d"`` and ``eq`` of numbers, which
  go wrong there, are refused here.

Also stricter than Helm: printing a map or a list (use ``toYaml``), a number of a million or
more (Helm prints ``1e+06``), or ``int`` of a non-numeric string (Sprig gives 0) all raise.
The values are validated against ``values.schema.json`` with ``jsonschema``, as Helm does.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import yaml

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(
    r"""\s*(?:(?P<str>"(?:[^"\\\n]|\\.)*")|(?P<raw>`[^`]*`)|(?P<num>-?\d+(?:\.\d+)?)
    |(?P<decl>:=)|(?P<punct>[()|,])|(?P<var>\$\w*(?:\.[A-Za-z_]\w*)*)
    |(?P<field>(?:\.[A-Za-z_]\w*)+|\.(?![\w.]))|(?P<ident>[A-Za-z_]\w*))""",
    re.X,
)
_KEYWORDS = {"if", "else", "end", "range", "with", "define", "template"}
_UNSUPPORTED = {"block", "break", "continue", "nil"}
_NOTHING = object()
_LOCATED = re.compile(r"[\w.-]+:\d+: ")


class TemplateError(Exception):
    """A template is outside the supported subset, or fails as it would under Helm."""


class _Struct(dict):
    """A Go struct (``.Release``, ``.Chart``, the root): an unknown field is an error."""


def _kind(value: Any) -> str:
    if value is None or isinstance(value, bool | str):
        return type(value).__name__
    raise TemplateError(f"eq/ne compare strings, bools and nil only; got {value!r}")


def _truthy(value: Any) -> bool:
    return not (value is None or value is False or value in (0, "") or value == [] or value == {})


def _text(value: Any) -> str:
    """A value as Go's template output prints it (nil as nothing, as Helm does)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if abs(value) >= 1_000_000:
            raise TemplateError(f"{value} would print as 1e+06 style under Helm; quote it")
        return str(int(value)) if float(value).is_integer() else repr(value)
    if isinstance(value, str):
        return value
    raise TemplateError(f"printing a {type(value).__name__} ({value!r:.60}); use toYaml")


def _str(value: Any, func: str) -> str:
    if not isinstance(value, str):
        raise TemplateError(f"{func} wants a string; got {type(value).__name__} {value!r:.60}")
    return value


def _to_yaml(value: Any) -> str:
    dumped = yaml.safe_dump(value, default_flow_style=False, sort_keys=True, width=10**9)
    return dumped.removesuffix("\n...\n").rstrip("\n")


def _default(fallback: Any, *given: Any) -> Any:
    value = given[0] if given else None
    return value if _truthy(value) else fallback


def _required(message: str, value: Any) -> Any:
    if value is None or value == "":
        raise TemplateError(f"required: {message}")
    return value


def _to_int(value: Any) -> int:
    if isinstance(value, bool | int | float):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    raise TemplateError(f"int of {value!r} (Sprig would silently give 0)")


def _printf(fmt: str, *args: Any) -> str:
    pending = list(args)

    def verb(match: re.Match[str]) -> str:
        if match.group(1) == "%":
            return "%"
        if not pending:
            raise TemplateError(f"printf {fmt!r}: too few arguments")
        arg = pending.pop(0)
        if match.group(1) in "sq":
            _str(arg, f"printf %{match.group(1)}")
        return json.dumps(arg, ensure_ascii=False) if match.group(1) == "q" else _text(arg)

    out = re.sub(r"%(.)", lambda m: verb(m) if m.group(1) in "svq%" else _bad_verb(fmt), fmt)
    if pending:
        raise TemplateError(f"printf {fmt!r}: too many arguments")
    return out


def _bad_verb(fmt: str) -> str:
    raise TemplateError(f"printf {fmt!r}: only %s %v %q %% are supported")


def _trunc(length: int, text: str) -> str:
    text = _str(text, "trunc")
    if length < 0:
        return text[length:] if len(text) + length > 0 else text
    return text[:length]


FUNCS: dict[str, Callable[..., Any]] = {
    "quote": lambda *a: " ".join(
        json.dumps(_text(v), ensure_ascii=False) for v in a if v is not None
    ),
    "default": _default,
    "toYaml": _to_yaml,
    "nindent": lambda n, s: "\n" + " " * n + _str(s, "nindent").replace("\n", "\n" + " " * n),
    "indent": lambda n, s: " " * n + _str(s, "indent").replace("\n", "\n" + " " * n),
    "trunc": _trunc,
    "trimSuffix": lambda suffix, s: _str(s, "trimSuffix").removesuffix(suffix),
    "b64enc": lambda s: base64.b64encode(_str(s, "b64enc").encode()).decode(),
    "sha256sum": lambda s: hashlib.sha256(_str(s, "sha256sum").encode()).hexdigest(),
    "required": _required,
    "printf": _printf,
    "eq": lambda a, *bs: any(_kind(a) == _kind(b) and a == b for b in bs),
    "ne": lambda a, b: not (_kind(a) == _kind(b) and a == b),
    "not": lambda v: not _truthy(v),
    "int": _to_int,
}
_LAZY = {"and", "or", "include"}


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` merged into a copy of ``base`` as Helm merges ``-f``/``--set`` values."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class Chart:
    """A chart directory: its ``Chart.yaml``, default values, schema and parsed templates."""

    def __init__(self, path: Path) -> None:
        """Parse every file under ``templates/``; syntax errors raise here."""
        self.path = Path(path)
        meta = yaml.safe_load((self.path / "Chart.yaml").read_text())
        self.meta = _Struct(
            Name=meta["name"],
            Version=meta["version"],
            AppVersion=meta.get("appVersion"),
            Description=meta.get("description"),
        )
        self.values = yaml.safe_load((self.path / "values.yaml").read_text()) or {}
        schema_file = self.path / "values.schema.json"
        self.schema = json.loads(schema_file.read_text()) if schema_file.is_file() else None
        self.defines: dict[str, list] = {}
        self.files: dict[str, list] = {}
        for file in sorted((self.path / "templates").iterdir()):
            self.files[file.name] = self._parse_file(file.name, file.read_text())

    # -- parsing ---------------------------------------------------------------------------

    def _parse_file(self, name: str, source: str) -> list:
        items: list[tuple] = []
        pos = 0
        for match in _ACTION.finditer(source):
            text = source[pos : match.start()]
            if match.group(1):
                text = text.rstrip(" \t\r\n")
            if items and items[-1][0] == "trim":
                items.pop()
                text = text.lstrip(" \t\r\n")
            items.append(("text", text))
            where = f"{name}:{source.count(chr(10), 0, match.start()) + 1}"
            body = match.group(2).strip()
            if not (body.startswith("/*") and body.endswith("*/")):
                items.append(("action", _tokens(body, where), where))
            if match.group(3):
                items.append(("trim",))
            pos = match.end()
        tail = source[pos:]
        if items and items[-1][0] == "trim":
            items.pop()
            tail = tail.lstrip(" \t\r\n")
        items.append(("text", tail))
        nodes, _, stop = self._parse(items, 0)
        if stop is not None:
            raise TemplateError(f"{stop[2]}: unexpected {stop[1][0][1]}")
        return nodes

    def _parse(self, items: list[tuple], pos: int) -> tuple[list, int, tuple | None]:
        nodes: list[tuple] = []
        while pos < len(items):
            item = items[pos]
            pos += 1
            if item[0] == "text":
                nodes.append(item)
                continue
            tokens, where = item[1], item[2]
            head = tokens[0][1] if tokens[0][0] == "ident" else None
            if head in ("end", "else"):
                return nodes, pos, item
            if head in ("if", "with", "range"):
                node, pos = self._block(head, item, items, pos)
                nodes.append(node)
            elif head in ("define", "template"):
                if len(tokens) < 2 or tokens[1][0] not in ("str", "raw"):
                    raise TemplateError(f"{where}: {head} needs a quoted name")
                if head == "template":
                    data = _pipe(tokens[2:], where) if tokens[2:] else None
                    nodes.append(("template", tokens[1][1], data, where))
                    continue
                body, pos, stop = self._parse(items, pos)
                if stop is None or len(stop[1]) != 1 or stop[1][0][1] != "end":
                    raise TemplateError(f"{where}: define without its end")
                self.defines[tokens[1][1]] = body
            else:
                nodes.append(("out", _pipe(tokens, where, declare=True), where))
        return nodes, pos, None

    def _block(self, head: str, item: tuple, items: list[tuple], pos: int) -> tuple[tuple, int]:
        where = item[2]
        cond = _pipe(item[1][1:], where, declare=head == "range")
        branches = []
        while True:
            body, pos, stop = self._parse(items, pos)
            if stop is None:
                raise TemplateError(f"{where}: {head} without its end")
            branches.append((cond, body))
            words = [t[1] for t in stop[1]]
            if words == ["end"]:
                return (head, branches, [], where), pos
            if words == ["else"]:
                other, pos, end = self._parse(items, pos)
                if end is None or [t[1] for t in end[1]] != ["end"]:
                    raise TemplateError(f"{where}: {head} ... else without its end")
                return (head, branches, other, where), pos
            if head == "if" and words[:2] == ["else", "if"]:
                cond = _pipe(stop[1][2:], stop[2])
                continue
            raise TemplateError(f"{stop[2]}: {' '.join(map(str, words))} is not supported")

    # -- execution -------------------------------------------------------------------------

    def _exec(self, nodes: list, dot: Any, scope: dict[str, Any], out: list[str]) -> None:
        for node in nodes:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "out":
                value = self._eval_pipe(node[1], dot, scope, node[2])
                if not node[1][0]:
                    out.append(_text(value))
            elif kind == "template":
                data = self._eval_pipe(node[2], dot, scope, node[3]) if node[2] else None
                out.append(self.include(node[1], data))
            elif kind == "if":
                for cond, body in node[1]:
                    if _truthy(self._eval_pipe(cond, dot, scope, node[3])):
                        self._exec(body, dot, dict(scope), out)
                        break
                else:
                    self._exec(node[2], dot, dict(scope), out)
            elif kind == "with":
                value = self._eval_pipe(node[1][0][0], dot, scope, node[3])
                body = node[1][0][1] if _truthy(value) else node[2]
                self._exec(body, value if _truthy(value) else dot, dict(scope), out)
            else:
                self._range(node, dot, scope, out)

    def _range(self, node: tuple, dot: Any, scope: dict[str, Any], out: list[str]) -> None:
        (names, cmds), body = node[1][0]
        value = self._eval_pipe(([], cmds), dot, scope, node[3])
        if isinstance(value, dict):
            pairs = sorted(value.items())
        elif isinstance(value, list):
            pairs = list(enumerate(value))
        elif value is None:
            pairs = []
        else:
            raise TemplateError(f"{node[3]}: range over {type(value).__name__} is not supported")
        for key, item in pairs:
            inner = dict(scope)
            if len(names) == 1:
                inner[names[0]] = item
            elif len(names) == 2:
                inner[names[0]], inner[names[1]] = key, item
            self._exec(body, item, inner, out)
        if not pairs:
            self._exec(node[2], dot, dict(scope), out)

    def _eval_pipe(self, pipe: tuple, dot: Any, scope: dict[str, Any], where: str) -> Any:
        names, cmds = pipe
        value: Any = _NOTHING
        for cmd in cmds:
            value = self._eval_cmd(cmd, dot, scope, value, where)
        if len(names) == 1:
            scope[names[0]] = value
        elif names:
            raise TemplateError(f"{where}: two variables are for range only")
        return value

    def _eval_cmd(self, cmd: list, dot: Any, scope: dict, piped: Any, where: str) -> Any:
        if cmd[0][0] != "fn":
            if len(cmd) > 1 or piped is not _NOTHING:
                raise TemplateError(f"{where}: arguments given to a non-function")
            return self._operand(cmd[0], dot, scope, where)
        name, args = cmd[0][1], cmd[1:]
        thunks = [lambda a=a: self._operand(a, dot, scope, where) for a in args]
        if piped is not _NOTHING:
            thunks.append(lambda: piped)
        try:
            if name in ("and", "or"):
                if not thunks:
                    raise TemplateError(f"{where}: {name} needs arguments")
                for thunk in thunks:
                    value = thunk()
                    if _truthy(value) == (name == "or"):
                        return value
                return value
            values = [thunk() for thunk in thunks]
            if name == "include":
                return self.include(*values)
            return FUNCS[name](*values)
        except TemplateError as exc:
            if _LOCATED.match(str(exc)):
                raise
            raise TemplateError(f"{where}: {exc}") from None
        except TypeError as exc:
            raise TemplateError(f"{where}: {name}: {exc}") from None

    def _operand(self, operand: tuple, dot: Any, scope: dict, where: str) -> Any:
        kind = operand[0]
        if kind == "lit":
            return operand[1]
        if kind == "pipe":
            return self._eval_pipe(operand[1], dot, scope, where)
        if kind == "fn":
            raise TemplateError(f"{where}: function {operand[1]} as an argument; use ( )")
        if kind == "var":
            if operand[1] not in scope:
                raise TemplateError(f"{where}: undefined variable {operand[1]}")
            dot = scope[operand[1]]
        for name in operand[2]:
            if isinstance(dot, _Struct):
                if name not in dot:
                    raise TemplateError(f"{where}: can't evaluate field {name}")
                dot = dot[name]
            elif isinstance(dot, dict):
                dot = dot.get(name)
            elif dot is None:
                raise TemplateError(f"{where}: nil pointer evaluating .{name}")
            else:
                raise TemplateError(f"{where}: can't evaluate field {name} in {dot!r:.40}")
        return dot

    # -- the public face -------------------------------------------------------------------

    def include(self, name: str, data: Any = None) -> str:
        """The output of ``define``d template ``name`` run on ``data``."""
        if name not in self.defines:
            raise TemplateError(f'no template "{name}" is defined')
        out: list[str] = []
        self._exec(self.defines[name], data, {"$": data}, out)
        return "".join(out)

    def render(
        self,
        overrides: dict[str, Any] | None = None,
        *,
        release: str = "seawatch",
        namespace: str = "default",
    ) -> dict[str, str]:
        """Every template's text (``_*`` files left out, ``NOTES.txt`` in), like helm template."""
        values = deep_merge(self.values, overrides or {})
        if self.schema is not None:
            try:
                jsonschema.validate(values, self.schema)
            except jsonschema.ValidationError as exc:
                path = ".".join(map(str, exc.absolute_path)) or "(top level)"
                msg = f"values don't meet values.schema.json: {path}: {exc.message}"
                raise TemplateError(msg) from None
        root = _Struct(
            Values=values,
            Chart=self.meta,
            Release=_Struct(Name=release, Namespace=namespace, Service="Helm", IsInstall=True),
        )
        rendered = {}
        for name, nodes in self.files.items():
            if not name.startswith("_"):
                out: list[str] = []
                self._exec(nodes, root, {"$": root}, out)
                rendered[name] = "".join(out)
        return rendered


def _tokens(body: str, where: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    pos = 0
    while body[pos:].strip():
        match = _TOKEN.match(body, pos)
        if match is None or match.end() == pos:
            raise TemplateError(f"{where}: cannot read {body[pos:].strip()[:30]!r}")
        kind = match.lastgroup
        text = match.group(kind).strip()
        if kind == "str":
            tokens.append(("str", json.loads(text)))
        elif kind == "raw":
            tokens.append(("raw", text[1:-1]))
        elif kind == "num":
            tokens.append(("num", float(text) if "." in text else int(text)))
        else:
            tokens.append((kind, text))
        pos = match.end()
    if not tokens:
        raise TemplateError(f"{where}: empty action")
    return tokens


def _pipe(tokens: list, where: str, declare: bool = False) -> tuple[list[str], list[list]]:
    names: list[str] = []
    decl = [i for i, t in enumerate(tokens) if t[0] == "decl"]
    if decl:
        if not declare:
            raise TemplateError(f"{where}: variables can be declared here only with range")
        names = [t[1] for t in tokens[: decl[0]] if t[0] == "var"]
        if len(names) != (decl[0] + 1) // 2 or any("." in n for n in names):
            raise TemplateError(f"{where}: bad declaration")
        tokens = tokens[decl[0] + 1 :]
    cmds: list[list] = [[]]
    pos = 0
    while pos < len(tokens):
        kind, text = tokens[pos]
        pos += 1
        if (kind, text) == ("punct", "|"):
            cmds.append([])
        elif (kind, text) == ("punct", "("):
            depth, start = 1, pos
            while depth:
                if pos >= len(tokens):
                    raise TemplateError(f"{where}: unclosed (")
                depth += (
                    {"(": 1, ")": -1}.get(tokens[pos][1], 0) if tokens[pos][0] == "punct" else 0
                )
                pos += 1
            cmds[-1].append(("pipe", _pipe(tokens[start : pos - 1], where)))
        elif kind == "punct":
            raise TemplateError(f"{where}: unexpected {text!r}")
        elif kind in ("str", "raw", "num"):
            cmds[-1].append(("lit", text))
        elif kind == "field":
            cmds[-1].append(("field", None, [n for n in text.split(".") if n]))
        elif kind == "var":
            head, *rest = text.split(".")
            cmds[-1].append(("var", head, rest))
        elif text in ("true", "false"):
            cmds[-1].append(("lit", text == "true"))
        elif text in FUNCS or text in _LAZY:
            cmds[-1].append(("fn", text))
        elif text in _KEYWORDS or text in _UNSUPPORTED:
            raise TemplateError(f"{where}: {text} is not supported here")
        else:
            raise TemplateError(f"{where}: function {text!r} is not supported by this renderer")
    if any(not cmd for cmd in cmds):
        raise TemplateError(f"{where}: empty command in pipeline")
    return names, cmds


def render_manifests(
    chart: Path | Chart, overrides: dict[str, Any] | None = None, **release: str
) -> list[dict[str, Any]]:
    """The chart's Kubernetes objects: every rendered ``.yaml`` split on ``---``, parsed."""
    chart = chart if isinstance(chart, Chart) else Chart(chart)
    manifests = []
    for name, text in chart.render(overrides, **release).items():
        if name.endswith((".yaml", ".yml")):
            for doc in re.split(r"(?m)^---\s*$", text):
                obj = yaml.safe_load(doc)
                if obj is not None:
                    manifests.append(obj)
    return manifests
