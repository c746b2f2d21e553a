"""`gafu plan`: gafu.toml + the prepared dataset + GPU memory → one resolved, typed, versioned Plan.

`resolve_plan(project)` is the entry point; `gafu train` takes the Plan it returns and nothing
else. See `model.py` for the Plan's fields.
"""

from gafu.plan.model import PLAN_VERSION, Plan, load_plan, plan_from_dict, save_plan, write_plan_report
from gafu.plan.resolve import resolve_plan

__all__ = [
    "PLAN_VERSION",
    "Plan",
    "load_plan",
    "plan_from_dict",
    "resolve_plan",
    "save_plan",
    "write_plan_report",
]
