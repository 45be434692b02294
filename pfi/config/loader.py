"""Reading `pfi.yaml`: YAML with line numbers, environment overrides, readable errors.

PyYAML's composer keeps the position of every node; we keep those positions by key path
so that pydantic's errors (which know the path, not the line) can point at the line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

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
    data: dict[str, Any] = {}
    lines: dict[KeyPath, int] = {}
    file_label = str(path) if path is not None else "<defaults>"
    if path is not None:
        data, lines = _read_yaml(path)

    env_keys: dict[KeyPath, str] = {}
    for var, key_path in ENV_OVERRIDES.items():
        value = environ.get(var)
        if value is None or value == "":
            continue
        _set_path(data, key_path, value)
        env_keys[key_path] = var

    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            [_problem(err, file_label, lines, env_keys) for err in exc.errors()]
        ) from None


def _read_yaml(path: Path) -> tuple[dict[str, Any], dict[KeyPath, int]]:
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
        raise ConfigError(
            [ConfigProblem(f"{path}:1", "(root)", "a mapping of sections (engine, kafka, ...)")]
        )
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
                            _dotted((*key_path, key)),
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


def _dotted(key_path: KeyPath) -> str:
    out = ""
    for part in key_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(root)"


def _problem(
    err: Any, file_label: str, lines: dict[KeyPath, int], env_keys: dict[KeyPath, str]
) -> ConfigProblem:
    loc: KeyPath = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
    # pydantic adds the validator name for union/annotated members; keep the data path only.
    loc = tuple(p for p in loc if p not in ("function-after", "function-before"))
    if loc in env_keys:
        origin = f"environment {env_keys[loc]}"
    else:
        probe = loc
        while probe and probe not in lines:
            probe = probe[:-1]
        line = lines.get(probe)
        origin = f"{file_label}:{line}" if line else file_label
    return ConfigProblem(origin, _dotted(loc), _expected(err, loc))


def _expected(err: Any, loc: KeyPath) -> str:
    kind = err["type"]
    got = err.get("input")
    if kind == "extra_forbidden":
        return "unknown key" + _allowed_keys(loc)
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


def _allowed_keys(loc: KeyPath) -> str:
    """The keys a section accepts, to turn "unknown key" into a useful hint."""
    model: Any = Settings
    for part in loc[:-1]:
        if isinstance(model, type) and issubclass(model, BaseModel):
            field = model.model_fields.get(str(part))
            if field is None:
                return ""
            model = _unwrap_optional(field.annotation)
        else:  # a dict or list of sections: step into the value type
            args = get_args(model)
            model = _unwrap_optional(args[-1]) if args else None
    if isinstance(model, type) and issubclass(model, BaseModel):
        return "; expected one of: " + ", ".join(sorted(model.model_fields))
    return ""


def _unwrap_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        return members[0] if len(members) == 1 else annotation
    return annotation
