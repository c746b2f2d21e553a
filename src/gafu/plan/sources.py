"""Where each plan value came from: a recipe rule, a family preset, a `gafu.toml` override, the dataset.

`resolve_plan` and its section builders record a source for every value they set; the plan
carries them in the order its values appear, so the JSON reads top to bottom.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from typing import Any

from gafu.config import Config, default_text
from gafu.errors import ConfigError
from gafu.plan.model import Plan, value_names

_RULE = re.compile(r"^([DTP]\d+(?:/[DTP]\d+)*)\b")


class Sources:
    """Records where each plan value came from, keyed by its dotted name in the plan."""

    def __init__(self, config: Config):
        self._config = config
        self.by_name: dict[str, str] = {}
        self._from_kohya = kohya_values(config)

    def override(self, section: str, key: str, recipe: str) -> str:
        """The source of a value gafu.toml sets: `gafu.toml [train] unet_lr`, or, when it is the
        value `gafu init --from-kohya` imported, `gafu.toml (from kohya) …` with the recipe's beside it."""
        imported = self._from_kohya.get(section, {})
        if key in imported and imported[key] == getattr(getattr(self._config, section), key):
            return f"gafu.toml (from kohya) [{section}] {key}; {recipe}"
        return f"gafu.toml [{section}] {key}"

    def set(self, name: str, value: Any, source: str) -> Any:
        """Record `source` for `name` and return `value`."""
        self.by_name[name] = source
        return value

    def config(self, name: str, section: str, key: str, *, default_source: str | None = None) -> Any:
        """A value from `[section] key`: an override when it differs from the default, else its rule."""
        section_obj = getattr(self._config, section)
        value = getattr(section_obj, key)
        rule = default_source or rule_of(type(section_obj), key)
        if value != getattr(type(section_obj)(), key):
            return self.set(name, value, self.override(section, key, f"{rule}: {default_text(section, key)}"))
        return self.set(name, value, rule)

    def ordered(self, plan: Plan) -> dict[str, str]:
        """Sources in the order the plan's values appear (for reading the JSON top to bottom)."""
        order = {name: i for i, name in enumerate(value_names(plan.to_dict()))}
        return dict(sorted(self.by_name.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))


def kohya_values(config: Config) -> dict[str, dict[str, Any]]:
    """`[kohya] values` (`train.unet_lr = 0.0005` …) as tables: what `gafu init --from-kohya` set."""
    try:
        return tomllib.loads("\n".join(config.kohya.values))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"gafu.toml [kohya] values are not `section.key = value` lines ({exc})",
            hint="fix them, or empty the list (it only labels values in `gafu plan`)",
        ) from exc


def rule_of(section_cls: type, key: str) -> str:
    """`recipe P4` from a config field's doc (`"P4: …"`), else `gafu default`."""
    doc = next(f.metadata.get("doc", "") for f in dataclasses.fields(section_cls) if f.name == key)
    match = _RULE.match(doc)
    return f"recipe {match.group(1)}" if match else "gafu default"
