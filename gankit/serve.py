"""`gankit serve`: a local web page to explore a trained image GAN (seed, truncation, class, latent codes, text
prompt, interpolation), and the JSON/PNG API behind it. Starlette app, served by uvicorn; loopback by default.

    GET /                       the page (self-contained: inline script and style, nothing fetched from elsewhere)
    GET /api/info               the model: run, image shape, classes, codes, prompt, what sampling takes
    GET /api/sample?seed=1&n=16&truncation=0.7&class=3         a PNG grid, labelled as generated
    GET /api/sample?seed=1&code=c0:3&code=c1:0.5               InfoGAN models: codes fixed (the rest random)
    GET /api/sample?seed=1&prompt=a%20red%20star               text-to-image models: what to draw
    GET /api/interpolate?seed=1&seed_b=2&steps=8&class=3       a PNG row: slerp from one seed's latent to the other's

Every parameter is checked: a bad or out-of-range value answers 400 with a JSON message, never a traceback; the
sample count and the interpolation length are capped.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .errors import UserError
from .io import image_grid, png_bytes, provenance
from .train import Generator, load
from .variants import slerp

MAX_SAMPLES = 64
MAX_STEPS = 16
MAX_SEED = 2**31 - 1
MAX_PROMPT = 200  # characters
CODE_RANGE = 3.0  # a continuous code may be set within ±this (trained on ±1; traversals show ±2)


class BadRequest(ValueError):
    """A query parameter that is missing, malformed or out of range: answered with 400 and this message."""


def _number(request: Request, name: str, kind: type, default: Any, low: float, high: float) -> Any:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise BadRequest(f"{name} must be {'an integer' if kind is int else 'a number'}, got {raw!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}, got {raw}")
    return value


def _label(gen: Generator, request: Request) -> int | None:
    raw = request.query_params.get("class")
    if raw in (None, ""):
        return None
    if not gen.class_names:
        raise BadRequest("this model is not class-conditional: it takes no class")
    try:
        return int(gen.label_indices(raw, 1)[0])
    except UserError as exc:
        raise BadRequest(exc.message) from None


def _codes(gen: Generator, request: Request) -> dict[str, float]:
    """`code=NAME:VALUE` parameters (repeatable): a categorical code takes one of its values, a continuous one a
    number within ±CODE_RANGE."""
    codes: dict[str, float] = {}
    for item in request.query_params.getlist("code"):
        name, _, raw = item.partition(":")
        if name not in gen.variant.code_names:
            known = ", ".join(gen.variant.code_names) or "none"
            raise BadRequest(f"code {name!r} is not a latent code of this model (its codes: {known})")
        try:
            value = float(raw)
        except ValueError:
            raise BadRequest(f"code {item!r} is not NAME:NUMBER, e.g. c0:3") from None
        if name == gen.variant.categorical_code():
            if value not in gen.variant.code_values(name):
                raise BadRequest(f"code {name} takes one of its values 0-{len(gen.variant.code_values(name)) - 1}")
        elif not -CODE_RANGE <= value <= CODE_RANGE:
            raise BadRequest(f"code {name} must be between {-CODE_RANGE} and {CODE_RANGE}, got {raw}")
        codes[name] = value
    return codes


def _prompt(gen: Generator, request: Request) -> str | None:
    raw = request.query_params.get("prompt", "").strip()
    if "prompt" not in gen.sampling:
        if raw:
            raise BadRequest("this model takes no text prompt")
        return None
    if not raw:
        raise BadRequest("this model draws what a prompt says: give prompt=..., e.g. 'a red star'")
    if len(raw) > MAX_PROMPT:
        raise BadRequest(f"prompt is longer than {MAX_PROMPT} characters")
    return raw


def _png(images: torch.Tensor, nrow: int, meta: dict[str, Any]) -> Response:
    """A grid PNG, cells enlarged to at least 64 pixels, labelled as generated."""
    grid = image_grid(images, nrow=nrow, scale=max(1, 64 // images.shape[-1]))
    return Response(png_bytes(grid, provenance(**meta)), media_type="image/png")


def make_app(run_dir: str | Path) -> Starlette:
    """The explorer of one run (or exported model folder); the generator is loaded once, here."""
    run_dir = Path(run_dir)
    gen = load(run_dir)
    images = len(gen.spec.get("shape") or []) == 3
    if not images or ("inputs" in gen.sampling and "prompt" not in gen.sampling):
        raise UserError("gankit serve explores models that draw images from noise (with classes, codes or a prompt)",
                        "serve a DCGAN, cGAN, InfoGAN, BigGAN, text-to-image ... run; translators take images: use "
                        "`gankit translate`")
    takes_truncation = "truncation" in gen.sampling
    made_by = gen.provenance(run_dir)

    def params(request: Request) -> dict[str, Any]:
        """What a sample or an interpolation asks for, checked: seed, truncation, class, codes, prompt."""
        return {"seed": _number(request, "seed", int, 0, 0, MAX_SEED),
                "truncation": _number(request, "truncation", float, 1.0, 0.01, 1.0) if takes_truncation else 1.0,
                "label": _label(gen, request), "codes": _codes(gen, request), "prompt": _prompt(gen, request)}

    def draw(z: Tensor, asked: dict[str, Any]) -> Tensor:
        n = len(z)
        labels = None if asked["label"] is None else torch.full((n,), asked["label"], dtype=torch.long)
        try:
            inputs = None if asked["prompt"] is None else gen.data_kind.read_prompt([asked["prompt"]] * n, gen.spec)
            return gen.generate(z, labels=labels, codes=asked["codes"], inputs=inputs, seed=asked["seed"],
                                truncation=asked["truncation"])
        except UserError as exc:  # e.g. a prompt word the model does not know: the hint lists its vocabulary
            raise BadRequest(str(exc)) from None

    def meta(asked: dict[str, Any], task: str, **more: Any) -> dict[str, Any]:
        codes = ",".join(f"{k}={v:g}" for k, v in asked["codes"].items()) or None
        return {**made_by, "seed": asked["seed"], **more, "truncation": asked["truncation"], "class": asked["label"],
                "codes": codes, "prompt": asked["prompt"], "task": task}

    def answer(build):
        def endpoint(request: Request) -> Response:
            try:
                return build(request)
            except BadRequest as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return endpoint

    def sample(request: Request) -> Response:
        asked = params(request)
        n = _number(request, "n", int, 16, 1, MAX_SAMPLES)
        return _png(draw(gen.latents(n, asked["seed"], asked["truncation"]), asked), min(n, 8), meta(asked, "serve"))

    def interpolate(request: Request) -> Response:
        asked = params(request)
        seed_b = _number(request, "seed_b", int, asked["seed"] + 1, 0, MAX_SEED)
        steps = _number(request, "steps", int, 8, 2, MAX_STEPS)
        a, b = gen.latents(1, asked["seed"], asked["truncation"]), gen.latents(1, seed_b, asked["truncation"])
        z = torch.cat([slerp(a, b, t) for t in torch.linspace(0, 1, steps).tolist()])
        return _png(draw(z, asked), steps, meta(asked, "serve interpolate", seed_b=seed_b))

    def info(request: Request) -> Response:
        categorical = gen.variant.categorical_code()
        codes = [{"name": c, "values": gen.variant.code_values(c)} if c == categorical else
                 {"name": c, "range": [-CODE_RANGE, CODE_RANGE]} for c in gen.variant.code_names]
        return JSONResponse({"run": run_dir.name, "shape": gen.spec["shape"], "classes": gen.class_names,
                             "codes": codes, "prompt": "prompt" in gen.sampling, "truncation": takes_truncation,
                             "max_samples": MAX_SAMPLES, "max_steps": MAX_STEPS, "max_prompt": MAX_PROMPT})

    def page(request: Request) -> Response:
        return HTMLResponse(PAGE.replace("{{RUN}}", html.escape(run_dir.name)))

    return Starlette(routes=[Route("/", page), Route("/api/info", info), Route("/api/sample", answer(sample)),
                             Route("/api/interpolate", answer(interpolate))])


PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>gankit: {{RUN}}</title>
<style>body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}label{margin-right:1rem}
img{image-rendering:pixelated;border:1px solid #ccc;margin-top:1rem;max-width:100%}
.note{color:#666;font-size:.9rem}#error{color:#a31515}</style></head><body>
<h1>gankit explorer: {{RUN}}</h1>
<p class="note">Every image here is generated by a GAN; downloads carry that label in their metadata.</p>
<div><label>seed <input id="seed" type="number" min="0" value="0"></label>
<label id="trunc-box">truncation <input id="truncation" type="range" min="0.05" max="1" step="0.05" value="1">
<span id="trunc-value">1</span></label>
<label id="class-box" hidden>class <select id="class"><option value="">any</option></select></label>
<span id="codes"></span>
<label id="prompt-box" hidden>prompt <input id="prompt" size="36" maxlength="200" value="a red star"></label>
<label>samples <input id="n" type="number" min="1" max="64" value="16"></label>
<button id="go">sample</button></div>
<div><label>interpolate to seed <input id="seed_b" type="number" min="0" value="1"></label>
<label>steps <input id="steps" type="number" min="2" max="16" value="8"></label>
<button id="walk">interpolate</button></div>
<p id="error"></p>
<img id="picture" alt="generated samples" data-loaded="0"><br><a id="download" download="gankit.png">download PNG</a>
<script>
const $ = (id) => document.getElementById(id);
function query(extra) {
  const q = new URLSearchParams({seed: $("seed").value, ...extra});
  if (!$("trunc-box").hidden) q.set("truncation", $("truncation").value);
  if ($("class").value !== "") q.set("class", $("class").value);
  if (!$("prompt-box").hidden) q.set("prompt", $("prompt").value);
  document.querySelectorAll("[data-code]").forEach((el) => {
    if (el.value !== "" && !el.disabled) q.append("code", el.dataset.code + ":" + el.value);
  });
  return q.toString();
}
async function show(url) {
  const r = await fetch(url);
  if (!r.ok) { $("error").textContent = (await r.json()).error; return; }
  $("error").textContent = "";
  const src = URL.createObjectURL(await r.blob());
  $("picture").onload = () => { $("picture").dataset.loaded = "1"; };
  $("picture").src = src; $("download").href = src;
}
$("go").onclick = () => show("/api/sample?" + query({n: $("n").value}));
$("walk").onclick = () => show("/api/interpolate?" + query({seed_b: $("seed_b").value, steps: $("steps").value}));
$("truncation").oninput = () => { $("trunc-value").textContent = $("truncation").value; };
fetch("/api/info").then((r) => r.json()).then((info) => {
  $("trunc-box").hidden = !info.truncation;
  if (info.classes) {
    $("class-box").hidden = false;
    info.classes.forEach((c) => { const o = document.createElement("option"); o.value = c; o.textContent = c;
                                  $("class").appendChild(o); });
  }
  $("prompt-box").hidden = !info.prompt;
  info.codes.forEach((c) => {
    const label = document.createElement("label");
    label.textContent = c.name + " ";
    let el;
    if (c.values) {  // categorical: any, or one of its values
      el = document.createElement("select");
      ["", ...c.values].forEach((v) => { const o = document.createElement("option"); o.value = v;
                                         o.textContent = v === "" ? "any" : v; el.appendChild(o); });
    } else {  // continuous: a slider, off (random) until moved
      el = document.createElement("input");
      Object.assign(el, {type: "range", min: c.range[0], max: c.range[1], step: 0.25, value: 0, disabled: true});
      const on = document.createElement("input");
      on.type = "checkbox"; on.title = "fix " + c.name;
      on.onchange = () => { el.disabled = !on.checked; };
      label.appendChild(on);
    }
    el.dataset.code = c.name; el.id = "code-" + c.name;
    label.appendChild(el); $("codes").appendChild(label);
  });
  $("go").onclick();
});
</script></body></html>
"""
