"""Where each plan value came from: a recipe rule, a family preset, a `gafu.toml` override, the dataset.

`resolve_plan` and its section builders record a source for every value they set; the plan
carries them in the order its values appear, so the JSON reads top to bottom.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from gafu.config import Config
from gafu.plan.model import Plan, value_names

_RULE = re.compile(r"^([DTP]\d+(?:/[DTP]\d+)*)\b")


class Sources:
    """Records where each plan value came from, keyed by its dotted name in the plan."""

    def __init__(self, config: Config):
        self._config = config
        self.by_name: dict[str, str] = {}

    def set(self, name: str, value: Any, source: str) -> Any:
        """Record `source` for `name` and return `value`."""
        self.by_name[name] = source
        return value

    def config(self, name: str, section: str, key: str, *, default_source: str | None = None) -> Any:
        """A value from `[section] key`: an override when it differs from the default, else its rule."""
        section_obj = getattr(self._config, section)
        value = getattr(section_obj, key)
        if value != getattr(type(section_obj)(), key):
            return self.set(name, value, f"gafu.toml [{section}] {key}")
        return self.set(name, value, default_source or rule_of(type(section_obj), key))

    def ordered(self, plan: Plan) -> dict[str, str]:
        """Sources in the order the plan's values appear (for reading the JSON top to bottom)."""
        order = {name: i for i, name in enumerate(value_names(plan.to_dict()))}
        return dict(sorted(self.by_name.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))


def rule_of(section_cls: type, key: str) -> str:
    """`recipe P4` from a config field's doc (`"P4: …"`), else `gafu default`."""
    doc = next(f.metadata.get("doc", "") for f in dataclasses.fields(section_cls) if f.name == key)
    match = _RULE.match(doc)
    return f"recipe {match.group(1)}" if match else "gafu default"
