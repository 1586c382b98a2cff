"""`gankit serve`: a local web page to explore a trained image GAN (seed, truncation, class, interpolation), and
the JSON/PNG API behind it. Starlette app, served by uvicorn; loopback by default.

    GET /                       the page (self-contained: inline script and style, nothing fetched from elsewhere)
    GET /api/info               the model: run, image shape, classes, what sampling takes
    GET /api/sample?seed=1&n=16&truncation=0.7&class=3         a PNG grid, labelled as generated
    GET /api/interpolate?seed=1&seed_b=2&steps=8&class=3       a PNG row: slerp from one seed's latent to the other's

Every parameter is checked: a bad or out-of-range value answers 400 with a JSON message, never a traceback; the
sample count and the interpolation length are capped.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import torch
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


def _png(images: torch.Tensor, nrow: int, meta: dict[str, Any]) -> Response:
    """A grid PNG, cells enlarged to at least 64 pixels, labelled as generated."""
    grid = image_grid(images, nrow=nrow, scale=max(1, 64 // images.shape[-1]))
    return Response(png_bytes(grid, provenance(**meta)), media_type="image/png")


def make_app(run_dir: str | Path) -> Starlette:
    """The explorer of one run (or exported model folder); the generator is loaded once, here."""
    run_dir = Path(run_dir)
    gen = load(run_dir)
    if gen.kind != "image" or {"inputs", "codes"} & gen.sampling:
        raise UserError("gankit serve explores models that draw images from noise (with classes or not)",
                        "serve a DCGAN, cGAN, BigGAN, ... run; translators take images: use `gankit translate`")
    takes_truncation = "truncation" in gen.sampling
    made_by = gen.provenance(run_dir)

    def params(request: Request) -> tuple[int, float, int | None]:
        seed = _number(request, "seed", int, 0, 0, MAX_SEED)
        truncation = _number(request, "truncation", float, 1.0, 0.01, 1.0) if takes_truncation else 1.0
        return seed, truncation, _label(gen, request)

    def answer(build):
        def endpoint(request: Request) -> Response:
            try:
                return build(request)
            except BadRequest as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return endpoint

    def sample(request: Request) -> Response:
        seed, truncation, label = params(request)
        n = _number(request, "n", int, 16, 1, MAX_SAMPLES)
        labels = None if label is None else torch.full((n,), label, dtype=torch.long)
        with torch.no_grad():
            x = gen.sample(n, seed=seed, truncation=truncation, labels=labels)
        meta = {**made_by, "seed": seed, "truncation": truncation, "class": label, "task": "serve"}
        return _png(x, min(n, 8), meta)

    def interpolate(request: Request) -> Response:
        seed, truncation, label = params(request)
        seed_b = _number(request, "seed_b", int, seed + 1, 0, MAX_SEED)
        steps = _number(request, "steps", int, 8, 2, MAX_STEPS)
        a, b = gen.latents(1, seed, truncation), gen.latents(1, seed_b, truncation)
        z = torch.cat([slerp(a, b, t) for t in torch.linspace(0, 1, steps).tolist()])
        labels = None if label is None else torch.full((steps,), label, dtype=torch.long)
        x = gen.generate(z, labels=labels, seed=seed, truncation=truncation)
        meta = {**made_by, "seed": seed, "seed_b": seed_b, "truncation": truncation, "class": label,
                "task": "serve interpolate"}
        return _png(x, steps, meta)

    def info(request: Request) -> Response:
        return JSONResponse({"run": run_dir.name, "shape": gen.spec["shape"], "classes": gen.class_names,
                             "truncation": takes_truncation, "max_samples": MAX_SAMPLES, "max_steps": MAX_STEPS})

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
  $("go").onclick();
});
</script></body></html>
"""
