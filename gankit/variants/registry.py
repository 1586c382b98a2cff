"""Where variants are found: one registration per variant, by name.

    @register_variant("mygan")          # gankit's own variants and any code that imports gankit
    class MyGAN(Variant): ...

A config may also name `package.module:Class` (imported on demand) or a name from the `gankit.variants` entry-point
group of an installed package (`[project.entry-points."gankit.variants"] mygan = "mypkg.gan:MyGAN"`).
"""

from __future__ import annotations

import difflib
import importlib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from ..config import Config, apply_overrides, load_source, section_name, validate, validate_model
from ..errors import UserError
from .base import Variant

ENTRY_POINT_GROUP = "gankit.variants"
DEFAULT_VARIANT = "gan"  # what a config without `variant:` trains
VARIANTS: dict[str, type[Variant]] = {}


def register_variant(name: str):
    """Class decorator: make a Variant subclass available as `variant: name`."""

    def add(cls: type[Variant]) -> type[Variant]:
        if not name.isidentifier():
            raise ValueError(f"variant name {name!r} must be an identifier (it names the variant's config section)")
        if name in VARIANTS and VARIANTS[name] is not cls:
            raise ValueError(f"variant {name!r} is already registered by {VARIANTS[name].__qualname__}")
        cls.name = name
        VARIANTS[name] = cls
        return cls

    return add


def _from_path(spec: str) -> type[Variant]:
    module_name, _, attr = spec.partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"variant '{spec}' cannot be imported: {exc}",
                        "check that the module is importable (installed, or on PYTHONPATH)") from None
    if not (isinstance(obj, type) and issubclass(obj, Variant)):
        raise UserError(f"variant '{spec}' is not a gankit Variant subclass")
    if not obj.name:
        obj.name = section_name(spec)
    return obj


def _from_entry_point(name: str) -> type[Variant] | None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            try:
                obj = ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken plug-in fails in its own import, with any type
                raise UserError(f"variant '{name}' (entry point {ep.value}) failed to load: {exc}") from None
            if not (isinstance(obj, type) and issubclass(obj, Variant)):
                raise UserError(f"entry point '{name}' ({ep.value}) is not a gankit Variant subclass")
            obj.name = obj.name or name
            return obj
    return None


def plugin_names() -> list[str]:
    """Names in the `gankit.variants` entry-point group of installed packages (not imported)."""
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in VARIANTS)


def variant_class(name: str) -> type[Variant]:
    """The Variant class a config's `variant` names: registered, `package.module:Class` or an entry point."""
    if name in VARIANTS:
        return VARIANTS[name]
    if ":" in name:
        return _from_path(name)
    found = _from_entry_point(name)
    if found is not None:
        return found
    known = sorted(VARIANTS) + plugin_names()
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"choose one of: {', '.join(known)}, or package.module:Class"
    raise UserError(f"unknown variant '{name}'", hint)


def upgrade_legacy_keys(raw: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """Move keys that older gankit versions kept in shared sections (`model.cond`, `loss.info_weight`, ...) into the
    section of the variant that owns them, so old configs, run directories and commands keep working.

    Such a key set for another variant is dropped when it holds the old default (old configs wrote every key),
    and is an error otherwise.
    """
    out = apply_overrides(raw, [])  # a deep copy
    name = str(out.get("variant") or DEFAULT_VARIANT)
    for owner, cls in VARIANTS.items():
        for old, new in cls.legacy_keys.items():
            section, key = old.split(".")
            if not isinstance(out.get(section), dict) or key not in out[section]:
                continue
            value = out[section].pop(key)
            if owner == name:
                own = out.setdefault(section_name(name), {})
                if isinstance(own, dict):  # an old key is an override given after the preset's section: it wins
                    own[new] = value
            elif value != cls.Config.model_fields[new].default:
                raise UserError(f"{source}: '{old}' is a key of variant {owner}, not of {name}",
                                f"drop it, or set variant={owner} (its key is now {owner}.{new})")
    return out


def check_config(cfg: Config, source: str = "config") -> Config:
    """Fill in the default variant, validate the variant's own section in place (and that the variant exists);
    returns cfg."""
    if cfg.variant is None:
        cfg.variant = DEFAULT_VARIANT
    try:
        cls = variant_class(cfg.variant)
    except UserError as exc:  # name the file (or preset) that says `variant: ...`
        raise (exc if source == "config" else UserError(f"{source}: {exc.message}", exc.hint)) from None
    if isinstance(cfg.options, dict):
        cfg.set_options(validate_model(cls.Config, cfg.options, source, prefix=f"{cfg.section_key}."))
    return cfg


def validate_config(raw: dict[str, Any], source: str = "config") -> Config:
    """A complete, validated Config from a raw dict (old key locations upgraded)."""
    return check_config(validate(upgrade_legacy_keys(raw, source), source), source)


def resolve(name_or_path: str, overrides: list[str] | None = None) -> tuple[Config, str]:
    """Preset or YAML file + `key=value` overrides -> validated Config and a default run name."""
    raw, run_name = load_source(name_or_path)
    try:
        return validate_config(apply_overrides(raw, overrides or []), name_or_path), run_name
    except UserError as merged:
        if not overrides or Path(name_or_path).suffix.lower() not in (".yaml", ".yml"):
            raise
        try:
            validate_config(raw, name_or_path)
        except UserError as alone:
            if alone.message == merged.message:  # the file's own mistake, whatever the overrides say
                raise merged from None
        return validate_config(apply_overrides(raw, overrides), "the command line"), run_name  # the overrides'



def build_variant(cfg: Config, spec: dict) -> Variant:
    """The variant a config names, with freshly initialised networks for data described by `spec`."""
    return variant_class(cfg.variant)(check_config(cfg), spec)
