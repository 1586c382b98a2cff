"""`gankit report`: one self-contained HTML page per run, written after training and on demand; rendered in a real
headless Chromium where the machine has one."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from gankit.io import GENERATED_NOTE
from gankit.report.html import render_report

SHORT = ("train.steps=4", "train.sample_every=2", "train.log_every=1", "train.checkpoint_every=0")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from gankit.train import Trainer
    from gankit.variants import resolve

    run_dir = tmp_path_factory.mktemp("report") / "run<b>"  # a name that needs escaping
    Trainer(resolve("digits-dcgan", ["model.width=8", *SHORT])[0], run_dir, progress=False).fit()
    return run_dir


def test_the_page_is_self_contained_and_shows_samples_curves_doctor_and_card(run, cli):
    assert cli("eval", str(run), "-n", "100")[0] == 0
    page = render_report(run)
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing to fetch: every image is inline
    assert "http://" not in page and "https://" not in page
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) >= 3  # two grids and the curves
    assert "step-2" in page and "step-4" in page
    assert "<h2>Doctor</h2>" in page and GENERATED_NOTE in page
    assert "<th>fid</th>" in page and "Protocol (how each figure was measured)" in page
    assert "run&lt;b&gt;" in page and "run<b>" not in page  # the run's name is escaped


def test_training_writes_the_report_and_bad_output_names_are_refused(tmp_path, cli):
    code, _, err = cli("train", "digits-dcgan", "model.width=8", *SHORT, "--out", str(tmp_path / "r"),
                       "--no-progress")
    assert code == 0 and (tmp_path / "r" / "report.html").is_file() and "report" in err
    code, _, err = cli("report", str(tmp_path / "r"), "--out", str(tmp_path / "r.txt"))
    assert code == 2 and "HTML" in err and not (tmp_path / "r.txt").exists()


def test_chromium_renders_the_page_with_its_images(run, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed here (Debian package `chromium`; .ci/run installs it as root)")
    html = render_report(run)

    def midtones(text: str, name: str) -> int:
        """Pixels between dark and white in a screenshot of the page: images, not text on white."""
        page, shot = tmp_path / f"{name}.html", tmp_path / f"{name}.png"
        page.write_text(text)
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400",
                        f"--screenshot={shot}", page.as_uri()], check=True, capture_output=True, timeout=120)
        from PIL import Image

        with Image.open(shot) as image:
            return sum(image.convert("L").histogram()[40:200])

    without_images = re.sub(r'<img src="data:[^"]*"', '<img src=""', html)
    assert midtones(html, "report") > midtones(without_images, "text") + 50_000  # the grids and curves drew


def test_a_run_without_pictures_logs_its_progress_and_the_report_draws_the_curves(ring_cfg, tmp_path):
    """`train.pictures=false` skips samples/step-N.png and losses.png (and matplotlib) but not the logged progress
    metric the doctor reads; `gankit report` draws the curves from the logs afterwards."""
    import json

    from gankit.train import Trainer

    run_dir = tmp_path / "quiet"
    Trainer(ring_cfg("train.sample_every=30", "train.pictures=false"), run_dir, progress=False).fit()
    assert not list(run_dir.glob("samples/*.png")) and not (run_dir / "losses.png").exists()
    logged = [json.loads(line) for line in (run_dir / "logs.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "modes" in r] == [30, 60]
    page = render_report(run_dir)
    assert (run_dir / "losses.png").is_file() and "No curves" not in page


def test_grids_are_spread_over_training_in_step_order_and_end_with_the_last(tmp_path):
    from gankit.report.html import MAX_GRIDS, _grids

    (tmp_path / "samples").mkdir()
    for step in range(1, 13):
        (tmp_path / "samples" / f"step-{step * 5}.png").write_bytes(b"")
    steps = [int(p.stem.split("-")[1]) for p in _grids(tmp_path)]
    assert len(steps) == MAX_GRIDS and steps == sorted(steps) and steps[0] == 5 and steps[-1] == 60


def test_the_page_shows_the_metrics_protocol_doctor_card_and_config(run, tmp_path):
    import json
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "metrics.json").write_text(json.dumps({"fid": 0.001234, "protocol": {"generated": {"seed": 7}}}))
    page = render_report(copy)
    assert "<th>fid</th><td>0.001234</td>" in page
    details = page.split("Protocol (how each figure was measured)")[1]
    assert "&quot;seed&quot;: 7" in details.split("</details>")[0]
    assert re.search(r"<h2>Doctor</h2>\n<(p|ul)", page)
    assert "<th>Generated content</th>" in page and "gankit provenance FILE" in page
    assert "<h2>Config</h2>" in page and "digits" in page.split("<h2>Config</h2>")[1]
