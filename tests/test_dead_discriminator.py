"""The dead-D watch: a D whose score no longer depends on the image is reported once, with the step."""

import torch

from gancore.dead_discriminator import SCORE_SPREAD, DeadDiscriminatorWatch
from gancore.testing import make_tiny_config


def _stats(spread: float, score: float = 0.18) -> dict[str, float]:
    return {SCORE_SPREAD: spread, "Loss/scores/real": score, "Loss/scores/fake": score}


def test_the_watch_reports_once_after_its_patience_and_starts_again_when_d_lives():
    watch = DeadDiscriminatorWatch(patience=3)
    assert [watch.check(s, _stats(0.0)) for s in (1, 2)] == [None, None]
    message = watch.check(3, _stats(0.0))
    assert message is not None and "same score (0.18) for 3 steps" in message and "step 1 at the latest" in message
    assert watch.check(4, _stats(0.0)) is None  # once per streak
    assert watch.check(5, _stats(0.3)) is None and watch.streak == 0
    assert watch.check(6, {"Loss/G/total": 1.0}) is None and watch.streak == 0  # a step without D's statistics
    assert watch.check(7, _stats(float("nan"))) is None  # divergence is the divergence guard's to report


def test_the_spread_is_relative_to_the_scores():
    watch = DeadDiscriminatorWatch(patience=1)
    assert watch.check(1, _stats(1e-3, score=5e4)) is not None  # float noise on a huge constant
    assert DeadDiscriminatorWatch(patience=1).check(1, _stats(1e-3, score=0.5)) is None


def _train(raw, capsys, kill_d: bool):
    from gancore.run import Run

    run = Run.build(raw)
    if kill_d:
        with torch.no_grad():  # all weights zero: every hidden unit is 0 for every input, and no gradient moves them
            for p in run.D.parameters():
                p.zero_()
    run.train()
    return run, capsys.readouterr().err


def test_a_dead_d_is_reported_during_training_and_a_live_one_is_not(capsys):
    raw = make_tiny_config("mlp", steps=6, batch=8, dead_d_steps=4)
    run, err = _train(raw, capsys, kill_d=True)
    assert err.count("gancore: warning: D has given every image the same score") == 1
    assert "for 4 steps in a row (to step 4)" in err
    _, err = _train(raw, capsys, kill_d=False)
    assert "same score" not in err
    raw["train"]["dead_d_steps"] = 0
    _, err = _train(raw, capsys, kill_d=True)
    assert "same score" not in err
