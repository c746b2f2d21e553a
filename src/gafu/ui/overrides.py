"""The plan page's overrides form: the editable keys of gafu.toml, and typed-in text → a checked Config.

The form sends text as typed; each value is parsed for its field's kind, put into the config's
plain data and checked by `config_from_dict` (types, choices, unknown keys). The caller then
resolves the plan with the result, so the plan's own checks apply too, before anything is written.
An error that names a field (`[train] epochs` or `train.epochs`) is shown next to it.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from typing import Any

from gafu.config import Config, config_field_names, config_from_dict
from gafu.errors import ConfigError, GafuError

EDITABLE_SECTIONS = ("train", "network", "sample", "eval")


class FieldErrors(GafuError):
    """Overrides that gafu.toml cannot take: field name → message (HTTP 400, shown by each field)."""

    def __init__(self, fields: dict[str, str]):
        self.fields = fields
        super().__init__("; ".join(fields.values()))


def override_fields(config: Config) -> list[dict[str, Any]]:
    """The plan page's form: every key of the editable sections with its value, default, type and doc."""
    fields = []
    defaults = Config()
    for section in EDITABLE_SECTIONS:
        cls = typing.get_type_hints(Config)[section]
        hints = typing.get_type_hints(cls)
        docs = {f.name: f.metadata.get("doc", "") for f in dataclasses.fields(cls)}
        for key in config_field_names(section):
            kind, choices = _kind(hints[key])
            fields.append(
                {
                    "name": f"{section}.{key}",
                    "value": getattr(getattr(config, section), key),
                    "default": getattr(getattr(defaults, section), key),
                    "kind": kind,
                    "choices": choices,
                    "doc": docs[key],
                }
            )
    return fields


def _kind(hint: Any) -> tuple[str, list[Any]]:
    """A field's form input: bool, int, float, str, choice (with its choices), floats or lines."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return _kind(args[0])
    if typing.get_origin(hint) is typing.Literal:
        return "choice", list(typing.get_args(hint))
    if typing.get_origin(hint) is list:
        return ("lines" if args == [str] else "floats"), []
    return getattr(hint, "__name__", "str"), []


def apply_overrides(config: Config, values: dict[str, Any]) -> Config:
    """`config` with the form's values (text as typed) put in; types checked by `config_from_dict`."""
    data = config.to_dict()
    kinds = {f["name"]: f["kind"] for f in override_fields(config)}
    errors = {}
    for name, text in values.items():
        if name not in kinds:
            errors[name] = f"{name} is not a setting the plan page can change"
            continue
        section, key = name.split(".", 1)
        try:
            value = _parse_value(kinds[name], text)
        except ValueError as exc:
            errors[name] = f"{name}: {exc}"
            continue
        if value is None:
            data[section].pop(key, None)  # unset: back to the default (e.g. P9 flags from the family)
        else:
            data[section][key] = value
    if errors:
        raise FieldErrors(errors)
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise field_errors(str(exc), values) from exc


def _parse_value(kind: str, text: Any) -> Any:
    """Form text → a TOML value of the field's kind; empty text → None (the default)."""
    if not isinstance(text, str):
        return text  # already typed (a JSON client)
    text = text.strip()
    if kind in ("str", "choice"):
        return text
    if kind == "lines":
        return [line.strip() for line in text.splitlines() if line.strip()]
    if not text:
        return None
    if kind == "floats":
        text = f"[{text.strip('[]')}]"
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        raise ValueError(
            f"{text!r} is not a valid {'list of numbers' if kind == 'floats' else kind}"
        ) from None


def field_errors(message: str, values: dict[str, Any]) -> GafuError:
    """Put a config error next to the field it names (`[train] epochs` or `train.epochs`), if it names one."""
    for name in values:
        section, key = name.split(".", 1)
        if re.search(rf"(\[{section}\] {key}\b|\b{section}\.{key}\b)", message):
            return FieldErrors({name: message})
    return ConfigError(message)
