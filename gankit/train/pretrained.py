"""Loading a trained generator for sampling, without the trainer: model/config.json + model/model.safetensors."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from pydantic import BaseModel
from torch import Tensor

from ..config import Config, ModelConfig, WatermarkConfig, section_name
from ..data import kind_of, upgrade_spec
from ..errors import UserError
from ..io import atomic_path, write_json
from ..nets.style import STYLE_PARTS
from ..nets.watermark import Watermark, fingerprint
from ..version import __version__
from ..variants import (Request, Variant, build_variant, refused, resolve, upgrade_legacy_keys, validate_config,
                        variant_class)
from . import checkpoint as ckpt

log = logging.getLogger("gankit")
EXPORT_SCHEMA = 2  # version of model/config.json; load() reads this one and every older one


class Generator:
    """A trained generator: `sample(n, seed=..., truncation=...)` returns samples in the data's layout.

    `config` holds what rebuilt it (variant, its section, model); the run's full config is in RUN/config.yaml.
    """

    def __init__(self, variant: Variant, config: Config, spec: dict, info: dict, source: Path | None = None) -> None:
        self.variant, self.config, self.spec, self.info = variant.eval(), config, spec, info
        self.source = source  # the run directory (or model folder) it was loaded from: refinement reads D there
        self._refiner = None
        self.watermark = output_stage(config, spec)

    @property
    def kind(self) -> str:
        return self.spec["kind"]

    @property
    def data_kind(self):
        """The data kind object (its writers, input readers, default metrics)."""
        return kind_of(self.spec)

    @property
    def sampling(self) -> frozenset[str]:
        """What this model's sampling takes: some of truncation, labels, codes, inputs."""
        return self.variant.sampling

    @property
    def device(self) -> torch.device:
        return self.variant.device

    def to(self, device: str | torch.device) -> Generator:
        self.variant.to(device)
        if self.watermark is not None:
            self.watermark.to(device)
        return self

    @property
    def class_names(self) -> list[str] | None:
        """Classes a class-conditional model can be asked for (None for unconditional models)."""
        return self.variant.class_names

    def label_indices(self, labels: int | str | Sequence[int | str] | Tensor, n: int) -> Tensor:
        """Class indices (n,) from one class or n classes, given by index or by name."""
        names = self.class_names
        if not names:
            raise UserError("this model is not class-conditional: it takes no class", "sample without --class")
        items = labels.tolist() if isinstance(labels, Tensor) else labels
        items = [items] * n if isinstance(items, (int, str)) else list(items)
        out = []
        for item in items:
            index = names.index(item) if isinstance(item, str) and item in names else item
            if isinstance(index, str) and index.isdigit():
                index = int(index)
            if not isinstance(index, int) or not 0 <= index < len(names):
                raise UserError(f"unknown class {item!r}", f"choose an index 0-{len(names) - 1} or one of: "
                                f"{', '.join(names[:20])}")
            out.append(index)
        if len(out) != n:
            raise UserError(f"got {len(out)} classes for {n} samples", "give one class, or one per sample")
        return torch.tensor(out, dtype=torch.long)

    def latents(self, n: int, seed: int | None = None, truncation: float = 1.0) -> Tensor:
        """The noise `sample(n, seed=seed)` starts from, (n, z_dim): for interpolation and editing."""
        if not 0 < truncation <= 1:
            raise UserError(f"truncation must be in (0, 1], got {truncation}", "1 means no truncation")
        return self.variant.noise(n, truncation=truncation, generator=_generator(seed))

    @torch.no_grad()
    def sample(self, n: int | None = None, seed: int | None = None, truncation: float = 1.0,
               labels: int | str | Sequence[int | str] | Tensor | None = None, codes: dict[str, float] | None = None,
               inputs: Tensor | None = None, batch_size: int = 1024, refine: str | None = None,
               refine_steps: int = 0, direction: str | None = None, condition: Tensor | None = None,
               prompt: str | Sequence[str] | None = None) -> Tensor:
        """n samples on the CPU: images (n, C, H, W) in [-1, 1] or vectors (n, D); the same seed gives the same samples.

        `refine` ("drs" or "mh") keeps the samples the run's calibrated D believes (gankit.train.refine); it needs the
        run directory, and takes one class at most; `refine_steps` trains D that many steps further against this G
        first (docs/refine.md).

        Class-conditional models take `labels` (one class or one per sample, by index or name; random if None);
        InfoGAN models take `codes` such as {"c0": 3, "c1": 0.5} (the rest random); models that transform inputs
        (translators, upscalers) take `inputs`, one sample per input (n may then be left out); two-way translators
        (CycleGAN) also take `direction`, "a2b" (the default) or "b2a"; table models take `condition`, one
        condition vector per sample (`data_kind.read_condition`), and every row then shows what it asks for;
        text-to-image models take a `prompt`, one for all n samples or one per sample ("a blue circle"; unknown
        words are a UserError listing the vocabulary).
        """
        if prompt is not None:
            self.check_takes(prompt=True)
            if inputs is not None:
                raise UserError("a prompt and inputs both say what to draw", "give one of them")
            prompts = [prompt] if isinstance(prompt, str) else list(prompt)
            if n is not None and len(prompts) == 1:
                prompts = prompts * n
            inputs = self.data_kind.read_prompt(prompts, self.spec)
        if n is None and inputs is not None:
            n = len(inputs)
        if n is None or n < 1:
            raise UserError(f"cannot sample {n} samples", "ask for at least 1")
        if inputs is not None and len(inputs) != n:
            raise UserError(f"got {len(inputs)} inputs for {n} samples", "give one input per sample")
        if condition is not None and len(condition) != n:
            raise UserError(f"got {len(condition)} conditions for {n} samples", "give one condition per sample")
        self.check_takes(labels=labels is not None, codes=bool(codes), inputs=inputs is not None,
                         truncation=truncation != 1, direction=direction is not None, condition=condition is not None)
        if refine is not None:
            return self.refined(refine, n, seed, truncation, labels, codes, steps=refine_steps)[0]
        if refine_steps:
            raise UserError(f"refine_steps={refine_steps} trains D for refinement, and no refine was asked for",
                            "pass refine='drs' or 'mh' as well, or drop refine_steps")
        return self.generate(self.latents(n, seed, truncation), labels=labels, codes=codes, inputs=inputs, seed=seed,
                             batch_size=batch_size, direction=direction, condition=condition, truncation=truncation)

    def refiner(self, quantile: float = 0.5, chain: int = 20, steps: int = 0, truncation: float = 1.0):
        """The run's calibrated D for discriminator-guided sampling, trained `steps` further against this G first,
        both against samples of the truncation it will refine (built once per setting, then reused)."""
        from .refine import Refiner

        setting = (quantile, chain, steps, truncation)
        if self._refiner is None or self._refiner.setting != setting:
            if self.source is None:
                raise UserError("refinement needs the run directory this model came from",
                                "load it with gankit.load(RUN)")
            self._refiner = Refiner(self, self.source, quantile=quantile, chain=chain, steps=steps,
                                    truncation=truncation)
        return self._refiner

    @torch.no_grad()
    def refined(self, method: str, n: int, seed: int | None = None, truncation: float = 1.0,
                labels: int | str | Sequence[int | str] | Tensor | None = None, codes: dict[str, float] | None = None,
                quantile: float = 0.5, chain: int = 20, steps: int = 0):
        """(n samples refined by `method`, what it cost: gankit.train.refine.RefineStats); `steps`: D's further
        training against this G before calibration."""
        label = None
        if labels is not None:
            index = self.label_indices(labels, 1) if isinstance(labels, (int, str)) else self.label_indices(labels, n)
            if len(set(index.tolist())) != 1:
                raise UserError("refined sampling takes one class at most", "pass one --class, or none")
            label = int(index[0])
        request = {"codes": dict(codes or {}), "truncation": truncation}
        seed = int(torch.randint(2**31, ()).item()) if seed is None else seed
        samples, cost = self.refiner(quantile, chain, steps, truncation).sample(method, n, seed, label=label, **request)
        return self.finish(samples), cost

    def check_takes(self, **asked: bool) -> None:
        """A clear error when a request asks for something this model does not take (see SAMPLING_OPTIONS)."""
        problem = refused(self.sampling, **asked)
        if problem is not None:
            raise UserError(*problem)

    def generate(self, z: Tensor, labels: int | str | Sequence[int | str] | Tensor | None = None,
                 codes: dict[str, float] | None = None, inputs: Tensor | None = None, seed: int | None = None,
                 batch_size: int = 1024, direction: str | None = None, condition: Tensor | None = None,
                 truncation: float = 1.0) -> Tensor:
        """Samples from given latents z (n, z_dim); random labels or codes come from `seed`. `truncation` is for
        models that truncate after the noise (StyleGAN's ψ toward the mean w); others truncate in `latents`."""
        return torch.cat(list(self.generate_batches(z, labels, codes, inputs, seed, batch_size, direction, condition,
                                                    truncation)))

    @torch.no_grad()
    def generate_batches(self, z: Tensor, labels: int | str | Sequence[int | str] | Tensor | None = None,
                         codes: dict[str, float] | None = None, inputs: Tensor | None = None,
                         seed: int | None = None, batch_size: int = 1024, direction: str | None = None,
                         condition: Tensor | None = None, truncation: float = 1.0,
                         part: tuple[int, int] | None = None) -> Iterator[Tensor]:
        """generate's samples, one forward pass of `batch_size` at a time, each made when it is consumed: a
        consumer that streams (eval's feature extraction) holds one batch of images, not n. `part=(lo, hi)`: only
        rows lo..hi-1 of those samples (one process's share), the same rows as in the whole; the batches before
        still draw their random conditions, without running G, so the stream stays in step."""
        n = len(z)
        lo, hi = part if part is not None else (0, n)
        label_index = self.label_indices(labels, n) if labels is not None else None
        gen = _generator(None if seed is None else seed + 1)  # conditions draw from their own stream
        for start in range(0, min(n, hi), batch_size):
            part_z = z[start : start + batch_size].to(self.device)
            rows = slice(start, start + len(part_z))
            request = Request(len(part_z), z=part_z, labels=None if label_index is None else label_index[rows],
                              codes=dict(codes or {}), generator=gen,
                              inputs=None if inputs is None else inputs[rows].to(self.device), direction=direction,
                              condition=None if condition is None else condition[rows].to(self.device),
                              truncation=truncation)
            try:
                if start + len(part_z) <= lo:
                    self.variant.prepare(request)  # another process's rows: their draws only
                    continue
                samples = self.variant.generate(request)
            except ValueError as exc:
                raise UserError(str(exc)) from None
            yield self.finish(samples[max(lo - start, 0) : hi - start]).cpu()

    def finish(self, samples: Tensor) -> Tensor:
        """The output stage every sample passes: the invisible watermark where the model carries one."""
        return samples if self.watermark is None else self.watermark(samples)

    def provenance(self, run: Path) -> dict[str, str]:
        """Provenance fields naming the model behind an output: the run's name, the sha256 of the weights, and the
        fingerprint of the watermark key where outputs carry a mark."""
        fields = {"run": run.name, "model_sha256": self.weights_sha256()}
        if self.watermark is not None:
            fields["watermark"] = fingerprint(str(self.config.watermark.key))
        return fields

    def weights_sha256(self) -> str:
        """sha256 of the generator's weights (names and values): what provenance fields and caches name the model
        by; two models with the same weights share it whatever their file layout."""
        h = hashlib.sha256()
        for key, value in sorted(self.variant.generator_state().items()):
            h.update(key.encode())
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    @property
    def encodes(self) -> bool:
        """The model has an encoder (VAE-GAN): `reconstruct` redraws images through it."""
        return self.variant.encodes

    @torch.no_grad()
    def reconstruct(self, images: Tensor, batch_size: int = 1024) -> Tensor:
        """G(E(x)) for images (N, C, H, W) in [-1, 1] at the model's size, on the CPU: models with an encoder."""
        if not self.encodes:
            raise UserError("this model has no encoder: it cannot reconstruct images",
                            "train one with an encoder (variant=vaegan), or invert images with `gankit invert`")
        shape = tuple(self.spec["shape"])
        if tuple(images.shape[1:]) != shape:
            raise UserError(f"images are {tuple(images.shape[1:])}, the model takes {shape}",
                            "read them with the model's data kind (it resizes), or resize them first")
        return torch.cat([self.generate(self.variant.encode(part.to(self.device)).cpu())
                          for part in images.split(batch_size)])

    def save_pretrained(self, out: str | Path) -> Path:
        """Write this generator as a model folder (config.json + model.safetensors) that `gankit.load(out)` reads."""
        weights = {k: v.detach().cpu() for k, v in self.variant.generator_state().items()}
        info = {k: self.info[k] for k in ("step", "weights", "parameters") if k in self.info}
        return write_model_dir(Path(out), weights, {**info, "spec": self.spec,
                                                    "generator": generator_section(self.config)})

    @torch.no_grad()
    def grid(self, n: int, seed: int = 0, truncation: float = 1.0, labels: int | str | None = None,
             codes: dict[str, float] | None = None,
             vary: str | None = None) -> tuple[Tensor, int | None, Tensor | None, list[int] | None]:
        """Exactly n samples laid out for a picture: (samples, row length or None for square, labels or None, grid
        cell of each sample or None for cell i).

        `vary` sweeps one latent code (one column per value, one row per noise); a class-conditional model asked for
        no class gives one row per class, the same noise down each column, n spread as evenly as possible (the first
        n mod classes rows one longer); else n samples.
        """
        if vary is not None:
            try:
                values = self.variant.code_values(vary)
            except ValueError as exc:
                raise UserError(str(exc), "--vary takes a latent code of the model, e.g. c0 or c1") from None
            rows = max(1, n // len(values))
            z = self.latents(rows, seed, truncation)
            columns = [self.generate(z, codes={**(codes or {}), vary: v}, seed=seed, truncation=truncation)
                       for v in values]
            return torch.stack(columns, dim=1).flatten(0, 1), len(values), None, None
        if labels is None and self.class_names:
            k = len(self.class_names)
            counts = [n // k + (c < n % k) for c in range(k)]
            cols = max(counts)
            z = self.latents(cols, seed, truncation)
            x = torch.cat([self.generate(z[:m], labels=c, codes=codes, seed=seed, truncation=truncation)
                           for c, m in enumerate(counts) if m])
            cells = [c * cols + j for c, m in enumerate(counts) for j in range(m)]
            return x, cols, torch.arange(k).repeat_interleave(torch.tensor(counts)), cells
        label_index = self.label_indices(labels, n) if labels is not None else None
        x = self.sample(n, seed=seed, truncation=truncation, labels=label_index, codes=codes)
        return x, None, label_index, None

    @torch.no_grad()
    def mixing_grid(self, seed_a: int, seed_b: int, rows: int = 4, truncation: float = 1.0) -> tuple[Tensor, int]:
        """A style-mixing grid and its row length: per row a latent A (from seed_a), a latent B (from seed_b), then A
        with B's coarse, middle and fine styles in turn."""
        self.check_takes(mixing=True, truncation=truncation != 1)
        z_a = self.latents(rows, seed_a).to(self.device)
        z_b = self.latents(rows, seed_b).to(self.device)
        columns = [self.variant.run_generator(self.variant.prepare(Request(rows, z=z, truncation=truncation)))
                   for z in (z_a, z_b)]
        columns += [self.variant.mix(z_a, z_b, part, truncation) for part in STYLE_PARTS]
        return self.finish(torch.stack(columns, dim=1).flatten(0, 1)).cpu(), len(columns)


def _generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded with `seed`, or from the global RNG when None."""
    return torch.Generator().manual_seed(seed if seed is not None else int(torch.randint(2**62, ()).item()))


def _read_model_dir(model_dir: Path) -> tuple[dict, dict[str, Tensor]]:
    try:
        info = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{model_dir}/config.json is unreadable: {exc}") from None
    if not isinstance(info, dict) or not isinstance(info.get("sha256", ""), str):
        raise UserError(f"{model_dir}/config.json is not a gankit model description")
    weights = model_dir / "model.safetensors"
    if not weights.is_file():
        raise UserError(f"{weights} is missing")
    return info, ckpt.load_tensors(weights, info.get("sha256"))


def _from_checkpoint(run_dir: Path) -> tuple[dict, dict[str, Tensor]]:
    """Fallback when model/ is missing or corrupt: the newest verified checkpoint's generator weights."""
    path, state, files = ckpt.latest_checkpoint(run_dir)
    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise UserError(f"{run_dir}/config.yaml is unreadable: {exc}") from None
    model = files["model.safetensors"]
    ema = {k[4:]: v for k, v in model.items() if k.startswith("ema.")}
    info = {"config": cfg, "spec": state.get("spec"), "step": state["step"], "weights": "ema" if ema else "raw"}
    return info, ema or {k: v for k, v in model.items() if not k.startswith("ema.")}


def generator_section(cfg: Config) -> dict[str, Any]:
    """What rebuilds the generator (model/config.json's `generator`): the variant, its own section, and the model
    section without the keys that shape only D."""
    model = cfg.model.model_dump(mode="json")
    section = {"variant": cfg.variant,
               "model": {k: v for k, v in model.items() if k not in cfg.model.DISCRIMINATOR_KEYS}}
    options = cfg.options.model_dump(mode="json") if not isinstance(cfg.options, dict) else dict(cfg.options)
    if options:
        section[cfg.section_key] = options
    if cfg.watermark.key is not None:  # the output stage is part of the generator
        section["watermark"] = cfg.watermark.model_dump(mode="json")
    return section


def output_stage(cfg: Config, spec: dict) -> Watermark | None:
    """The watermark stage `watermark.key` asks for, sized to the model's images; None without a key. Models that
    draw no single images (tables, sequences, clips) cannot carry one: a UserError."""
    if cfg.watermark.key is None:
        return None
    shape = spec.get("shape") or []
    if len(shape) != 3 or min(shape[1:]) < 8:
        raise UserError(f"watermark.key: this model draws {spec.get('kind')} samples {tuple(shape)}, and only "
                        "images (C, H, W) of at least 8×8 pixels carry the watermark", "leave watermark.key unset")
    return Watermark(cfg.watermark.key, shape[1], shape[2], cfg.watermark.strength)


def write_model_dir(out: Path, weights: dict[str, Tensor], info: dict[str, Any]) -> Path:
    """An exported generator: `out/model.safetensors` and `out/config.json` (schema, version, checksum, `info`)."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "model.safetensors") as tmp:
        ckpt.save_tensors(tmp, weights)
    write_json(out / "config.json", {"schema": EXPORT_SCHEMA, "gankit_version": __version__, **info,
                                     "sha256": ckpt.sha256(out / "model.safetensors")})
    return out


def _known(model: type[BaseModel], raw: object) -> dict:
    """The keys of a saved section that today's schema knows; others (from an older or newer gankit) are dropped,
    so an export keeps loading when keys are added or removed."""
    if not isinstance(raw, dict):
        return {}
    dropped = sorted(set(raw) - set(model.model_fields))
    if dropped:
        log.debug("ignoring saved keys unknown to this gankit: %s", ", ".join(dropped))
    return {k: v for k, v in raw.items() if k in model.model_fields}


def generator_config(info: dict) -> tuple[Config, dict]:
    """(Config that rebuilds the generator, data spec) from a model description of any schema version.

    Schema 2 keeps only the generator's sections; schema 1 (gankit 0.1) kept the whole run config, whose keys may
    sit where older versions had them.
    """
    if "generator" in info:
        saved, data = info["generator"], None
    else:  # schema 1
        saved = upgrade_legacy_keys(info["config"], "saved model description")
        data = saved.get("data")
    name = str(saved["variant"])
    section = section_name(name)
    raw = {"variant": name, "model": _known(ModelConfig, saved.get("model"))}
    own = _known(variant_class(name).Config, saved.get(section))
    if own:
        raw[section] = own
    if saved.get("watermark"):
        raw["watermark"] = _known(WatermarkConfig, saved["watermark"])
    return validate_config(raw, "saved model description"), upgrade_spec(info["spec"], data)


def checkpoint_variant(cfg: Config, spec: dict, run_dir: Path) -> tuple[Variant, Path, dict[str, Any]]:
    """The whole variant (D side included) with the live (not EMA) weights of the run's newest verified checkpoint,
    in eval mode, and that checkpoint's path and state: for what needs more than the exported generator."""
    path, state, files = ckpt.latest_checkpoint(run_dir)
    variant = build_variant(cfg, state.get("spec") or spec)
    live = {k: v for k, v in files["model.safetensors"].items() if not k.startswith("ema.")}
    try:
        variant.load_state_dict(live)
    except RuntimeError as exc:  # a config.yaml edited after training
        raise UserError(f"{path}: the checkpoint does not fit {run_dir / 'config.yaml'}",
                        str(exc).splitlines()[-1].strip()) from None
    return variant.eval(), path, state


def run_variant(run_dir: Path) -> tuple[Variant, tuple[int, ...]] | None:
    """The whole variant of a run (D included) from its newest checkpoint and its sample shape, or None when the
    folder has no config.yaml or no checkpoint (an exported model folder keeps G only)."""
    if not (run_dir / "config.yaml").is_file() or not ckpt.list_checkpoints(run_dir):
        return None
    variant, _, state = checkpoint_variant(resolve(str(run_dir / "config.yaml"))[0], {}, run_dir)
    return variant, tuple(state["spec"]["shape"])


def _generator_from(info: dict[str, Any], weights: dict[str, Tensor], where: Path) -> tuple[Variant, Config, dict]:
    """The variant a saved description builds, with its generator's weights loaded; what does not fit is a
    UserError naming `where` (the model's config.json, or the checkpoints it came from)."""
    try:
        config, spec = generator_config(info)
        variant = build_variant(config, spec)
    except UserError as exc:
        raise UserError(f"{where}: {exc.message}", exc.hint) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{where}: the saved model description is invalid: {exc}") from None
    missing = set(variant.generator_state()) - set(weights)
    if missing:
        raise UserError(f"{where}: the saved weights lack {len(missing)} generator tensors, e.g. {sorted(missing)[0]}")
    try:
        variant.load_state_dict(weights, strict=False)
    except RuntimeError as exc:  # shapes that do not match the saved config
        raise UserError(f"{where}: the saved weights do not fit the saved model description",
                        str(exc).splitlines()[-1].strip()) from None
    return variant, config, spec


def load(run_dir: str | Path, device: str | torch.device = "cpu", *, ensemble: bool = False) -> Generator:
    """The generator of a run directory, or of an exported model folder under any name (its model/ folder, a copy,
    or what `Generator.save_pretrained` wrote), ready to `.sample(n)`. An ensemble run (model.members > 1) is refused
    unless `ensemble` asks for it whole (for summaries: its samples mix the members)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        problem = "is not a directory" if run_dir.exists() else "does not exist"
        raise UserError(f"{run_dir} {problem}", "give a run directory made by `gankit train` or a model folder")
    model_dir = run_dir / "model"
    if (run_dir / "config.json").is_file():  # a model folder itself; inside a run, checkpoints are the fallback
        model_dir = run_dir
        run_dir = run_dir.parent if run_dir.name == "model" else run_dir
    if (model_dir / "config.json").is_file():
        try:
            info, weights = _read_model_dir(model_dir)
            variant, config, spec = _generator_from(info, weights, model_dir / "config.json")
        except UserError as exc:
            if not ckpt.list_checkpoints(run_dir):
                raise
            log.warning("%s; using the newest verified checkpoint instead", exc.message)
            info, weights = _from_checkpoint(run_dir)
            variant, config, spec = _generator_from(info, weights, run_dir / "checkpoints")
    elif ckpt.list_checkpoints(run_dir) and (run_dir / "config.yaml").is_file():
        info, weights = _from_checkpoint(run_dir)
        variant, config, spec = _generator_from(info, weights, run_dir / "checkpoints")
    else:
        ckpt.refuse_pickles(run_dir)
        raise UserError(f"{run_dir} is not a gankit run (no model/config.json)", "train one with `gankit train`")
    if config.model.members > 1 and not ensemble:  # its samples would mix independent models
        raise UserError(f"{run_dir} is an ensemble of {config.model.members} models (model.members), not one model",
                        f"write one run per member with `gankit split {run_dir} --out DIR`, then use those")
    return Generator(variant, config, spec, info, source=run_dir).to(device)
