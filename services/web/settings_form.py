"""The settings form, read off the pydantic models of ``common.config``: each
section's fields with their kind, bounds, choices, description and current
value. The page builds its inputs from this, so a field added to the config
shows up in the browser without a line of HTML or JS.

Secrets never leave as values: a secret field says only whether it is set.
Lists and tables of tables (masks, zones, servos, endpoints) are edited as
JSON text, the shape the config holds them in.
"""

from __future__ import annotations

import typing
from typing import Any, Literal

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from common.config import Config


def form(config: Config) -> list[dict[str, Any]]:
    """Every section, nested ones as their own entries (``notify.telegram``),
    in the order the models declare them."""
    sections: list[dict[str, Any]] = []
    for name, info in Config.model_fields.items():
        _section(name, info, getattr(config, name), sections)
    return sections


def secret_keys() -> set[str]:
    """Dotted keys of every secret in the config."""
    out: set[str] = set()

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            sub = _model_of(info)
            if sub is not None:
                walk(sub, f"{prefix}{name}.")
            elif info.annotation is SecretStr:
                out.add(prefix + name)
    walk(Config, "")
    return out


def _model_of(info: FieldInfo) -> type[BaseModel] | None:
    ann = info.annotation
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def _section(key: str, info: FieldInfo, value: BaseModel, out: list[dict[str, Any]]) -> None:
    model = type(value)
    entry: dict[str, Any] = {"key": key, "title": info.title or _title(key.split(".")[-1]),
                             "description": info.description or _doc(model), "fields": []}
    out.append(entry)
    nested = []
    for name, field in model.model_fields.items():
        if _model_of(field) is not None:
            nested.append((f"{key}.{name}", field, getattr(value, name)))
        else:
            entry["fields"].append(_field(f"{key}.{name}", name, field, getattr(value, name)))
    for sub_key, field, sub_value in nested:
        _section(sub_key, field, sub_value, out)


def _doc(model: type[BaseModel]) -> str:
    doc = (model.__doc__ or "").strip()
    return "" if doc.startswith(("Usage docs", "!!!")) else doc.split("\n\n")[0]


def _title(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _field(key: str, name: str, info: FieldInfo, value: Any) -> dict[str, Any]:
    ann = info.annotation
    out: dict[str, Any] = {"key": key, "name": name, "title": info.title or _title(name),
                           "description": info.description or ""}
    args = typing.get_args(ann)
    if len(args) == 2 and type(None) in args:  # "int | None": an int, or unset (empty)
        ann = next(a for a in args if a is not type(None))
        out["optional"] = True
    if typing.get_origin(ann) is Literal:
        out["kind"] = "enum"
        out["options"] = list(typing.get_args(ann))
    elif ann is bool:
        out["kind"] = "bool"
    elif ann is int:
        out["kind"] = "int"
    elif ann is float:
        out["kind"] = "float"
    elif ann is str:
        out["kind"] = "str"
    elif ann is SecretStr:
        out["kind"] = "secret"
    else:
        out["kind"] = "json"
    for meta in info.metadata:
        for attr, bound in (("ge", "min"), ("gt", "min"), ("le", "max"), ("lt", "max"),
                            ("min_length", "min_length"), ("max_length", "max_length"),
                            ("pattern", "pattern")):
            if getattr(meta, attr, None) is not None:
                out[bound] = getattr(meta, attr)
                if attr in ("gt", "lt"):
                    out["exclusive"] = True
    if out["kind"] == "secret":
        out["set"] = bool(value.get_secret_value())
    elif out["kind"] == "json":
        out["value"] = _jsonable(value)
    else:
        out["value"] = value
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
