"""train.restarts: candidates train briefly, the one with the lowest logged criterion becomes the run."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

import gankit
from gankit.train import list_checkpoints
from gankit.train.restarts import score

TINY = ["train.steps=12", "train.restarts=3", "train.restart_steps=8", "train.restart_by=q_real_shift",
        "model.width=8", "train.batch_size=16", "train.log_every=2", "train.sample_every=0",
        "train.checkpoint_every=0"]


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def restarted(tmp_path_factory):
    run = tmp_path_factory.mktemp("restarts") / "run"
    result = gankit.train(gankit.load_config("digits-infogan", TINY), run, progress=False)
    return run, result


def test_the_candidate_with_the_lowest_criterion_is_continued(restarted):
    run, result = restarted
    assert result["step"] == 12 and result["interrupted_by"] is None
    chosen = json.loads((run / "restarts.json").read_text())
    seeds = [c["seed"] for c in chosen["candidates"]]
    assert seeds == [0, 1000, 2000] and chosen["by"] == "q_real_shift"
    scores = {s: score(run / "restarts" / f"seed-{s}", "q_real_shift", 8) for s in seeds}
    assert len(set(scores.values())) == 3  # the candidates differ, so the choice matters
    best = min(scores, key=scores.get)
    assert chosen["chosen_seed"] == best and [c["score"] for c in chosen["candidates"]] == [scores[s] for s in seeds]
    # the run is the winner's first 8 steps (its logs and weights), then 4 steps of its own
    winner = run / "restarts" / f"seed-{best}"
    assert [r for r in records(run / "logs.jsonl") if r["step"] <= 8] == records(winner / "logs.jsonl")
    assert max(r["step"] for r in records(run / "logs.jsonl")) == 12
    ours = {p.name for p in list_checkpoints(run)}
    assert "step-8" in ours and "step-12" in ours
    theirs = load_file(winner / "checkpoints" / "step-8" / "model.safetensors")
    copied = load_file(run / "checkpoints" / "step-8" / "model.safetensors")
    assert all(torch.equal(theirs[k], copied[k]) for k in theirs)
    final = load_file(run / "checkpoints" / "step-12" / "model.safetensors")
    assert any(not torch.equal(final[k], copied[k]) for k in copied)  # and it trained on from there


def test_resume_finishes_the_candidates_a_stopped_run_left(restarted, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(restarted[0], run)
    for name in ("checkpoints", "restarts/seed-2000"):
        shutil.rmtree(run / name)  # stopped while the last candidate trained, before its first checkpoint
    (run / "restarts.json").unlink()
    first = run / "restarts" / "seed-0" / "checkpoints" / "step-8" / "state.json"
    before = first.stat().st_mtime_ns
    gankit.train(gankit.load_config(str(run / "config.yaml")), run, progress=False, resume=True)
    assert first.stat().st_mtime_ns == before  # a finished candidate is not trained again
    assert (run / "restarts" / "seed-2000" / "checkpoints").is_dir()
    assert json.loads((run / "restarts.json").read_text()) == json.loads((restarted[0] / "restarts.json").read_text())


def test_a_resume_that_cannot_load_the_chosen_start_leaves_config_yaml_alone(restarted, tmp_path):
    """Overrides are written into config.yaml only once the run has resumed: here the start is chosen (the stopped
    candidate finishes) before the checkpoint loads, and a width the checkpoint does not fit must not stick."""
    run = tmp_path / "run"
    shutil.copytree(restarted[0], run)
    for name in ("checkpoints", "restarts/seed-2000"):
        shutil.rmtree(run / name)
    (run / "restarts.json").unlink()
    before = (run / "config.yaml").read_text()
    with pytest.raises(gankit.UserError, match="does not fit this config"):
        gankit.train(gankit.load_config(str(run / "config.yaml"), ["model.width=16"]), run, progress=False,
                     resume=True)
    assert (run / "config.yaml").read_text() == before


@pytest.mark.parametrize("override, fragment", [
    (["train.restart_by="], "needs train.restart_by"),
    (["train.restart_steps=12"], "must be below train.steps"),
])
def test_inconsistent_restart_keys_are_user_errors(override, fragment):
    with pytest.raises(gankit.UserError, match=fragment):
        gankit.load_config("digits-infogan", [*TINY, *override])


def test_a_criterion_the_run_does_not_log_names_what_it_does(tmp_path):
    cfg = gankit.load_config("digits-infogan", [*TINY, "train.restart_by=q_nonsense"])
    with pytest.raises(gankit.UserError, match="q_nonsense.*not logged") as caught:
        gankit.train(cfg, tmp_path / "r", progress=False)
    assert "q_real_shift" in caught.value.hint
