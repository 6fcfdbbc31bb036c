"""Typed configuration: pydantic models validated at the door, read from YAML.

Every stage defines its own config models on ``StrictModel`` (unknown keys are errors, so a typo never
silently falls back to a default). ``load_config`` turns a YAML file into a model and reports problems
with the file, the dotted field path, what was given and what is allowed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from geodiv.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for geodiv configs: unknown keys are errors; values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        given = e.get("input")
        extra = ""
        ctx = e.get("ctx") or {}
        if "expected" in ctx:
            extra = f" (allowed: {ctx['expected']})"
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        shown = repr(given)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        lines.append(f"  - {loc}: {msg}{extra}; given {shown}")
    return "\n".join(lines)


def validate_config(model: type[M], data: Any, source: str = "<config>") -> M:
    """Validate a mapping into ``model``; a ``ConfigError`` names the source and each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


def read_yaml(path: str | os.PathLike[str]) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` merged into ``base`` (in place, and returned): mappings merge key by key; any other value in ``top``,
    lists included, replaces the one in ``base``."""
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = deep_merge(base[key], value)
        else:
            base[key] = value
    return base


def read_mapping(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``read_yaml`` for a config file, which must hold a mapping at the top level."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level, not {type(data).__name__}")
    return data


def load_config(model: type[M], path: str | os.PathLike[str], overrides: dict[str, Any] | None = None) -> M:
    """Read YAML ``path`` into ``model``; ``overrides`` (dotted keys) win over the file."""
    data = read_mapping(path)
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value)
    return validate_config(model, data, str(path))


def parse_override(text: str) -> tuple[str, Any]:
    """``key.sub=value`` (value parsed as YAML) -> (``key.sub``, value); for ``--set`` flags."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value (e.g. train.epochs=2)")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw)


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {p!r} is not a mapping in the config")
    node[parts[-1]] = value
