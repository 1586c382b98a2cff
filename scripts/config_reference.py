"""Print docs/configuration.md from the pydantic config models, so the reference never drifts from the code.

    python scripts/config_reference.py > docs/configuration.md
"""

from __future__ import annotations

import sys
import types
import typing

from pydantic import BaseModel

from gankit.config import Config
from gankit.variants import VARIANTS


def _type_name(annotation: object) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in args)
    if origin is list:
        return f"list[{_type_name(args[0])}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def _constraint(meta: object) -> str:
    for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
        if hasattr(meta, attr):
            return f"{sign} {getattr(meta, attr)}"
    if hasattr(meta, "min_length"):
        return f"at least {meta.min_length}"
    return str(meta)


def _rows(model: type[BaseModel], prefix: str = "") -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            continue
        default = field.get_default(call_default_factory=True)
        constraints = ", ".join(_constraint(m) for m in field.metadata)
        meaning = " ".join(t for t in (field.description or "", f"({constraints})" if constraints else "") if t)
        rows.append(f"| `{prefix}{name}` | {_type_name(ann)} | `{default!r}` | {meaning} |")
    return rows


def render() -> str:
    lines = ["# Configuration reference", "",
             "Generated from `gankit/config.py` by `python scripts/config_reference.py > docs/configuration.md`.",
             "Any key can be set in a YAML file or as a `key=value` override after the preset: "
             "`gankit train digits-dcgan train.steps=5000 optim.lr_d=1e-4`.", ""]
    sections = [("top level", Config, "")] + [
        (name, field.annotation, f"{name}.") for name, field in Config.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)]
    sections += [(f"{name} (variant {name} only)", cls.Config, f"{name}.") for name, cls in VARIANTS.items()
                 if cls.Config.model_fields]
    for title, model, prefix in sections:
        doc = (model.__doc__ or "").strip().splitlines()[0] if model is not Config else "Run-wide settings."
        lines += [f"## {title}", "", doc, "", "| key | type | default | meaning |", "|---|---|---|---|"]
        lines += _rows(model, prefix) + [""]
    legacy = [f"`{old}` → `{name}.{new}`" for name, cls in VARIANTS.items() for old, new in cls.legacy_keys.items()]
    lines += ["## Keys of older versions", "",
              "Still accepted (in files, overrides and old run directories) and moved to the variant's section: "
              + ", ".join(legacy) + ".", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render())
