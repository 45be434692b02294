"""Reading `pfi.yaml`: YAML with line numbers, environment overrides, readable errors.

PyYAML's composer keeps the position of every node; we keep those positions by key path
so that pydantic's errors (which know the path, not the line) can point at the line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from pfi.config.model import Settings

DEFAULT_CONFIG_PATH = Path("config/pfi.yaml")

#: Environment variables that override a key, as the README documents them.
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "PFI_DATABASE_URL": ("database", "url"),
    "PFI_KAFKA_BOOTSTRAP": ("kafka", "bootstrap_servers"),
    "PFI_HTTP_HOST": ("http", "host"),
    "PFI_HTTP_PORT": ("http", "port"),
    "PFI_DATA_DIR": ("engine", "data_dir"),
    "PFI_LOG_LEVEL": ("logging", "level"),
    "PFI_LOG_FORMAT": ("logging", "format"),
}

KeyPath = tuple[str | int, ...]
ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the configuration, located as precisely as we can."""

    origin: str  # "config/pfi.yaml:12" or "environment PFI_HTTP_PORT"
    key: str  # "kafka.partitions"
    expected: str

    def __str__(self) -> str:
        return f"{self.origin}: {self.key}: {self.expected}"


class ConfigError(Exception):
    """The configuration cannot be used; `problems` lists every reason found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Load and validate the configuration file, then apply environment overrides.

    `path=None` means `config/pfi.yaml` when it exists, else the built-in defaults, so
    that `pfi run` works on a fresh checkout and from an empty directory alike.
    """
    environ = os.environ if environ is None else environ
    if path is None and DEFAULT_CONFIG_PATH.exists():
        path = DEFAULT_CONFIG_PATH
    if path is not None:
        doc = read_yaml_document(path, root_hint="a mapping of sections (engine, kafka, ...)")
    else:
        doc = YamlDocument("<defaults>", {}, {})

    env_keys: dict[KeyPath, str] = {}
    for var, key_path in ENV_OVERRIDES.items():
        value = environ.get(var)
        if value is None or value == "":
            continue
        _set_path(doc.data, key_path, value)
        env_keys[key_path] = var

    return validate_document(doc, Settings, env_keys=env_keys)


@dataclass
class YamlDocument:
    """A YAML mapping read with the line of every key, so that any later check (pydantic's
    or a cross-reference between sections) can name the line it is about."""

    label: str  # the file as the user named it, or "<defaults>"
    data: dict[str, Any]
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def origin(self, key_path: KeyPath) -> str:
        """`file:line` of the key, or of its nearest enclosing key that has a line."""
        probe = key_path
        while probe and probe not in self.lines:
            probe = probe[:-1]
        line = self.lines.get(probe)
        return f"{self.label}:{line}" if line else self.label

    def problem(self, key_path: KeyPath, expected: str) -> ConfigProblem:
        return ConfigProblem(self.origin(key_path), dotted(key_path), expected)


def read_yaml_document(path: Path, *, root_hint: str) -> YamlDocument:
    """Read a YAML file whose root must be a mapping; `root_hint` says what it should hold."""
    data, lines = _read_yaml(path, root_hint)
    return YamlDocument(str(path), data, lines)


def validate_document(
    doc: YamlDocument,
    model: type[ModelT],
    *,
    env_keys: Mapping[KeyPath, str] | None = None,
    context: dict[str, Any] | None = None,
) -> ModelT:
    """Validate with pydantic; every error becomes a `ConfigProblem` at its line."""
    try:
        return model.model_validate(doc.data, context=context)
    except ValidationError as exc:
        raise ConfigError(
            [_problem(err, doc, env_keys or {}, model) for err in exc.errors()]
        ) from None


def _read_yaml(path: Path, root_hint: str) -> tuple[dict[str, Any], dict[KeyPath, int]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(str(path), "(file)", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(str(path), "(file)", f"unreadable: {exc}")]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigProblem(where, "(syntax)", f"invalid YAML: {problem}")]) from None
    if node is None:
        return {}, {}
    lines: dict[KeyPath, int] = {}
    data = _to_python(node, (), lines, path)
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(f"{path}:1", "(root)", root_hint)])
    return data, lines


def _to_python(node: yaml.Node, key_path: KeyPath, lines: dict[KeyPath, int], path: Path) -> Any:
    lines[key_path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in result:
                raise ConfigError(
                    [
                        ConfigProblem(
                            f"{path}:{key_node.start_mark.line + 1}",
                            dotted((*key_path, key)),
                            "each key once (duplicate key)",
                        )
                    ]
                )
            child = (*key_path, key)
            result[key] = _to_python(value_node, child, lines, path)
            lines[child] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*key_path, i), lines, path) for i, item in enumerate(node.value)]
    return yaml.SafeLoader(node.value).construct_object(node)  # scalar: int, bool, null...


def _set_path(data: dict[str, Any], key_path: tuple[str, ...], value: str) -> None:
    cursor = data
    for key in key_path[:-1]:
        nxt = cursor.get(key)
        if not isinstance(nxt, dict):
            nxt = {}
            cursor[key] = nxt
        cursor = nxt
    cursor[key_path[-1]] = value


def dotted(key_path: KeyPath) -> str:
    """`routes[2].to[0]`: a key path as the error messages spell it."""
    out = ""
    for part in key_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(root)"


def _problem(
    err: Any, doc: YamlDocument, env_keys: Mapping[KeyPath, str], model: type[BaseModel]
) -> ConfigProblem:
    loc: KeyPath = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
    # pydantic adds the validator name for union/annotated members; keep the data path only.
    loc = tuple(p for p in loc if p not in ("function-after", "function-before"))
    if loc and isinstance(loc[-1], int) and loc not in doc.lines and loc[:-1] in doc.lines:
        loc = loc[:-1]  # a scalar the model reads as a one-item list: name the key as written
    origin = f"environment {env_keys[loc]}" if loc in env_keys else doc.origin(loc)
    return ConfigProblem(origin, dotted(loc), _expected(err, loc, model))


def _expected(err: Any, loc: KeyPath, model: type[BaseModel]) -> str:
    kind = err["type"]
    got = err.get("input")
    if kind == "extra_forbidden":
        return "unknown key" + _allowed_keys(loc, model)
    if kind == "missing":
        return "required key is missing"
    msg: str = err["msg"]
    if msg.startswith("Value error, "):
        msg = "expected " + msg.removeprefix("Value error, ")
    elif msg.startswith("Input should be "):
        msg = "expected " + msg.removeprefix("Input should be ")
    elif msg.startswith("String should match pattern "):
        msg = "expected a value matching " + msg.removeprefix("String should match pattern ")
    return f"{msg} (got {got!r})" if not isinstance(got, dict | list) else msg


def _allowed_keys(loc: KeyPath, root: type[BaseModel]) -> str:
    """The keys a section accepts, to turn "unknown key" into a useful hint."""
    model: Any = root
    for part in loc[:-1]:
        if isinstance(model, type) and issubclass(model, BaseModel):
            field_info = _field_by_key(model, str(part))
            if field_info is None:
                return ""
            model = _unwrap_optional(field_info.annotation)
        else:  # a dict or list of sections: step into the value type
            args = get_args(model)
            model = _unwrap_optional(args[-1]) if args else None
    if isinstance(model, type) and issubclass(model, BaseModel):
        keys = (info.alias or name for name, info in model.model_fields.items())
        return "; expected one of: " + ", ".join(sorted(keys))
    return ""


def _field_by_key(model: type[BaseModel], key: str) -> Any:
    """The field a YAML key names: its alias when it has one (`from`), else its name."""
    for name, info in model.model_fields.items():
        if (info.alias or name) == key:
            return info
    return None


def _unwrap_optional(annotation: Any) -> Any:
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        annotation = members[0] if len(members) == 1 else annotation
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation
