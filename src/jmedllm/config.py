"""Plain typed configs: dataclasses loaded from YAML / dicts with ``key=value`` overrides.

Unknown keys are errors (a typo must not silently fall back to a default), values are
coerced to the annotated type, and a resolved config dumps back to a plain dict.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

import yaml

from jmedllm.errors import UserError

T = TypeVar("T")


class ConfigError(UserError, ValueError):
    """A bad configuration value; ``where`` names the field ("recipe.stages[0].training.max_steps")."""

    where: str | None = None


def field_error(where: str, message: str) -> ConfigError:
    exc = ConfigError(f"{where}: {message}")
    exc.where = where
    return exc


# -- YAML: one strict reader for every YAML file a user hands us -----------------------------------
#
# Configs, recipes and custom-benchmark mappings are all read by ``parse_yaml`` / ``load_yaml``:
# plain YAML 1.1 (yaml.SafeLoader: no Python tags), but a key given twice in one mapping is an
# error naming both lines (PyYAML keeps the last one silently), and every key's line is kept so
# that a later error can say where the offending field is written.

#: A field's place in a YAML document: mapping keys and list indices from the top.
FieldPath = tuple[Any, ...]


class YamlError(ConfigError):
    """A YAML file that cannot be read: ``source``, ``line`` (1-based or None), ``key`` and ``problem``."""

    def __init__(self, source: str | Path, line: int | None, key: str | None, problem: str) -> None:
        self.source, self.line, self.key, self.problem = str(source), line, key, problem
        where = f"{source}, line {line}" if line else str(source)
        super().__init__(f"{where}: {f'{key}: ' if key else ''}{problem}")


class _StrictLoader(yaml.SafeLoader):
    source = "<yaml>"

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader reports it below
                continue
            line = key_node.start_mark.line + 1
            if first is not None:
                raise YamlError(self.source, line, str(key),
                                f"duplicate key (first given at line {first}, again at line {line}); "
                                "YAML would silently keep the last one")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _key_lines(node: yaml.Node | None, prefix: FieldPath, out: dict[FieldPath, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                path = prefix + (key_node.value,)
                out.setdefault(path, key_node.start_mark.line + 1)
                _key_lines(value_node, path, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.setdefault(prefix + (i,), item.start_mark.line + 1)
            _key_lines(item, prefix + (i,), out)


def parse_yaml(text: str, source: str | Path = "<yaml>") -> tuple[Any, dict[FieldPath, int]]:
    """Parse YAML ``text`` strictly: ``(data, lines)`` where ``lines[("a", 0, "b")]`` is the 1-based
    line of that key (or list item). Duplicate keys and syntax errors raise YamlError with the line."""
    loader = _StrictLoader(text)
    loader.source = str(source)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlError(source, mark.line + 1 if mark else None, None,
                        f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise YamlError(source, None, None, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    lines: dict[FieldPath, int] = {}
    _key_lines(node, (), lines)
    return data, lines


def load_yaml_lines(path: str | Path) -> tuple[dict[str, Any], dict[FieldPath, int]]:
    """Read a YAML file whose top level must be a mapping: ``(data, key lines)``; see parse_yaml."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder, not a YAML file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    data, lines = parse_yaml(text, path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise YamlError(path, 1, None, f"the top level must be a mapping, got {type(data).__name__}")
    return data, lines


def line_of(lines: Mapping[FieldPath, int], path: Sequence[Any]) -> int | None:
    """The line of ``path`` in a document read by parse_yaml, else of its nearest written parent."""
    path = tuple(path)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None


_MISSING = object()


def _get(tree: Any, path: FieldPath) -> Any:
    for part in path:
        try:
            tree = tree[part]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return tree


class FieldLocator:
    """Says where a field of a YAML file is written: ``<source>, line N``, or that a command-line
    value (a ``key=value`` override or a flag) set it when it differs from the file's."""

    def __init__(self, source: str, lines: Mapping[FieldPath, int] | None = None,
                 file_data: Mapping[str, Any] | None = None, data: Mapping[str, Any] | None = None) -> None:
        self.source, self.lines, self.file_data, self.data = source, lines or {}, file_data, data

    def __call__(self, path: FieldPath) -> str:
        if self.file_data is not None and self.data is not None and _get(self.file_data, path) != _get(self.data, path):
            return f"{self.source} (set on the command line)"
        line = line_of(self.lines, path)
        return f"{self.source}, line {line}" if line else self.source

    def error(self, path: FieldPath, message: str) -> ConfigError:
        name = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in path).replace(".[", "[")
        return ConfigError(f"{self(path)}: {name + ': ' if name else ''}{message}")

    def wrap(self, exc: ConfigError, root: str) -> ConfigError:
        """A from_mapping error (its ``where`` starts with ``root``) with the file and line in front."""
        where = self(field_path(exc.where, root)) if exc.where else self.source
        return ConfigError(f"{where}: {exc}")


def field_path(where: str, root: str) -> FieldPath:
    """'recipe.stages[0].training.max_steps' (a ``where`` of from_mapping) -> ('stages', 0, 'training', 'max_steps')."""
    rest = where[len(root):] if where.startswith(root) else where
    parts: list[Any] = []
    for piece in rest.replace("[", ".[").split("."):
        if not piece:
            continue
        parts.append(int(piece[1:-1]) if piece.startswith("[") and piece[1:-1].isdigit() else piece)
    return tuple(parts)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'a.b=3' -> (['a', 'b'], 3); the value is parsed as YAML (numbers, booleans, lists, null)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):  # YAML 1.1 reads "2e-4" as a string
        try:
            value = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            pass
    return key.split("."), value


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with dotted ``key=value`` overrides applied."""
    out: dict[str, Any] = _deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[path[-1]] = value
    return out


def _deepcopy(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {k: _deepcopy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deepcopy(v) for v in data]
    return data


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise field_error(where, f"{value!r} fits none of {tp}")
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise field_error(where, f"expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or tp is tuple else items
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise field_error(where, f"expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise field_error(where, f"expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise field_error(where, f"expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise field_error(where, f"expected an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise field_error(where, f"expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise field_error(where, f"expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise field_error(where, f"expected a string, got {value!r}")
        return str(value)
    if typing.get_origin(tp) is typing.Literal:
        if value not in args:
            raise field_error(where, f"{value!r} is not one of {', '.join(map(repr, args))}")
        return value
    return value


def from_mapping(cls: type[T], data: Mapping[str, Any] | None, where: str = "config") -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys and bad types are errors."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        exc = field_error(where, f"unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(fields))}")
        exc.where = f"{where}.{unknown[0]}"  # located at the first unknown key
        raise exc
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
            raise field_error(where, f"missing required key {name!r}")
    return cls(**kwargs)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping strictly (duplicate keys are errors naming both lines); see parse_yaml."""
    return load_yaml_lines(path)[0]


def to_dict(obj: Any) -> Any:
    """A resolved config as plain JSON/YAML-serialisable data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj
