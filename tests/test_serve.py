"""gankit serve: the API answers PNGs labelled as generated, refuses bad values with 400, caps sizes; the page
works end to end in a real headless Chromium where the machine has one."""

from __future__ import annotations

import io as _io
import shutil
import socket
import subprocess
import threading
import time

import pytest
from PIL import Image

pytest.importorskip("starlette", reason="the serve extra is not installed (make test installs it)")
from starlette.testclient import TestClient  # noqa: E402

from gankit.serve import MAX_SAMPLES, make_app  # noqa: E402

TINY = ("model.width=8", "train.steps=1", "train.sample_every=0", "train.checkpoint_every=0")
INFOGAN = ("digits-infogan", "train.batch_size=16", "train.restarts=1", *TINY)
TEXT2IMG = ("shapes32-text2img", "data.n=64", "model.width=8", "model.z_dim=16", "model.shared_dim=16",
            "text2img.embed_dim=8", "text2img.text_dim=8", "text2img.joint_dim=8", "train.batch_size=8", *TINY)


@pytest.fixture(scope="module")
def digits(train_tiny):
    return train_tiny("digits-dcgan", *TINY)


@pytest.fixture(scope="module")
def cgan(train_tiny):
    return train_tiny("digits-cgan", *TINY)


def png(response) -> Image.Image:
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    return Image.open(_io.BytesIO(response.content))


def test_sample_returns_a_labelled_png_grid_and_the_same_seed_the_same_pixels(digits):
    client = TestClient(make_app(digits))
    image = png(client.get("/api/sample?seed=3&n=4&truncation=0.5"))
    assert image.info["gankit:generated"] == "true" and image.info["gankit:seed"] == "3"
    assert len(image.info["gankit:model_sha256"]) == 64
    assert image.size == (4 * 64 + 5 * 4, 64 + 2 * 4)  # 4 cells of 16 px, enlarged 4x with their padding
    again = png(client.get("/api/sample?seed=3&n=4&truncation=0.5"))
    other = png(client.get("/api/sample?seed=4&n=4&truncation=0.5"))
    assert image.tobytes() == again.tobytes() != other.tobytes()


@pytest.mark.parametrize("query, message", [
    ("seed=abc", "seed must be an integer"), ("seed=-1", "seed must be between"),
    (f"n={MAX_SAMPLES + 1}", "n must be between"), ("truncation=0", "truncation must be between"),
    ("truncation=x", "must be a number"), ("class=3", "not class-conditional"),
])
def test_bad_values_answer_400_with_a_message(query, message, digits):
    response = TestClient(make_app(digits)).get(f"/api/sample?{query}")
    assert response.status_code == 400 and message in response.json()["error"]


def test_classes_and_interpolation_on_a_conditional_model(cgan):
    client = TestClient(make_app(cgan))
    info = client.get("/api/info").json()
    assert info["classes"] == [str(i) for i in range(10)]
    walk = png(client.get("/api/interpolate?seed=1&seed_b=9&steps=5&class=7"))
    assert walk.info["gankit:class"] == "7" and walk.size[0] > 4 * walk.size[1]
    assert client.get("/api/sample?class=eleven").status_code == 400
    assert client.get("/api/interpolate?steps=99").status_code == 400


def test_latent_codes_of_an_infogan_model_are_fixed_from_the_query(train_tiny):
    run = train_tiny(*INFOGAN)
    client = TestClient(make_app(run))
    codes = client.get("/api/info").json()["codes"]
    assert codes[0] == {"name": "c0", "values": [float(v) for v in range(10)]} and codes[1]["name"] == "c1"
    fixed = [png(client.get(f"/api/sample?seed=2&n=4&code=c0:{v}&code=c1:0.5")) for v in (3, 3, 4)]
    assert fixed[0].info["gankit:codes"] == "c0=3,c1=0.5"
    assert fixed[0].tobytes() == fixed[1].tobytes() != fixed[2].tobytes()  # the code reaches G
    for query, message in [("code=c9:1", "not a latent code"), ("code=c0:11", "takes one of its values"),
                           ("code=c1:7", "must be between"), ("code=c1", "NAME:NUMBER")]:
        response = client.get(f"/api/sample?{query}")
        assert response.status_code == 400 and message in response.json()["error"]


def test_a_text_to_image_model_draws_the_prompt_and_names_unknown_words(train_tiny):
    run = train_tiny(*TEXT2IMG)
    client = TestClient(make_app(run))
    assert client.get("/api/info").json()["prompt"] is True
    red, blue = (png(client.get(f"/api/sample?seed=1&n=2&prompt=a {c} star")) for c in ("red", "blue"))
    assert red.info["gankit:prompt"] == "a red star" and red.tobytes() != blue.tobytes()
    for query, message in [("", "give prompt="), ("prompt=a plaid star", "plaid"), ("prompt=" + "a" * 201, "longer")]:
        response = client.get(f"/api/sample?{query}")
        assert response.status_code == 400 and message in response.json()["error"]


def test_a_translator_is_refused_with_a_clear_error(train_tiny):
    from gankit.errors import UserError

    pix = train_tiny("shapes-pix2pix", "data.n=16", "data.resolution=16", "pix2pix.width=8", "train.batch_size=8",
                     *TINY)
    with pytest.raises(UserError, match="draw images from noise"):
        make_app(pix)


@pytest.mark.parametrize("preset", ["digits", "infogan", "text2img"])
def test_the_page_loads_its_samples_in_chromium(preset, digits, train_tiny, tmp_path):
    run = digits if preset == "digits" else train_tiny(*(INFOGAN if preset == "infogan" else TEXT2IMG))
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed here (Debian package `chromium`; .ci/run installs it as root)")
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(make_app(run), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                              "--no-first-run", "--disable-background-networking", "--disable-component-update",
                              "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
                              "--virtual-time-budget=10000", "--dump-dom", f"http://127.0.0.1:{port}/"],
                             check=True, capture_output=True, text=True, timeout=120).stdout
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert 'id="picture"' in dom and 'data-loaded="1"' in dom and 'src="blob:' in dom  # the script drew a sample
    if preset == "infogan":
        assert 'id="code-c0"' in dom and 'id="code-c1"' in dom  # a control per latent code
    if preset == "text2img":
        assert 'id="prompt-box">' in dom  # shown (not hidden), and its default prompt drew the picture
