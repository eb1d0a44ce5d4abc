"""Top-k training: the mask, the loss it gives, its gradients, the schedule, resume, stacking."""

import attrs
import pytest
import torch

import gancore
from gancore import hookimpl
from gancore.losses import g_adversarial_loss, weighted_mean
from gancore.testing import capture_first_gradients, make_tiny_config
from gancore.run import Run
from gancore_topk.plugin import TopK, TopKConfig
from gancore_topk.schedule import k_fraction_by_epoch, k_fraction_by_progress, kept_count
from gancore_topk.selection import topk_mask


@pytest.mark.parametrize("loss", ["nonsaturating", "hinge"])
def test_kept_set_is_exactly_the_top_k(loss):
    run = Run.build(make_tiny_config("mlp", ["topk"], loss=loss, batch=10))
    plugin = run.plugins["topk"]
    plugin.k_fraction = 0.4
    d_fake = torch.tensor([0.3, -2.0, 1.5, 0.0, 2.5, -0.1, 0.9, -3.0, 1.4, 0.2])
    mask = run.hooks.sample_weights(run, torch.zeros(10, 2), d_fake)
    assert mask.tolist() == [0, 0, 1, 0, 1, 0, 1, 0, 1, 0]  # the logits 2.5, 1.5, 1.4 and 0.9
    # Whatever the convention, the kept fakes are those with the lowest G loss (D finds them most real).
    per_sample = g_adversarial_loss(d_fake, loss)
    assert per_sample[mask.bool()].max() <= per_sample[~mask.bool()].min()


def test_mask_values():
    scores = torch.tensor([0.3, -2.0, 1.5, 0.0, 2.5, -0.1, 0.9, -3.0, 1.4, 0.2])
    assert topk_mask(scores, 4).nonzero().flatten().tolist() == [2, 4, 6, 8]
    assert topk_mask(torch.zeros(4), 2).tolist() == [1, 1, 0, 0]  # ties: lower index first
    with pytest.raises(ValueError, match=r"k must be in \[1, 4\], got 5"):
        topk_mask(torch.zeros(4), 5)


def test_loss_averages_over_the_kept_and_dropped_fakes_get_no_gradient():
    run = Run.build(make_tiny_config("mlp", ["topk"], batch=8))
    run.plugins["topk"].k_fraction = 0.5
    inputs = run.generator_inputs(8)
    fake = run.G(inputs["z"]).detach().requires_grad_(True)
    d_fake = run.D(fake)
    weights = run.hooks.sample_weights(run, fake, d_fake.detach())
    per_sample = g_adversarial_loss(d_fake)
    loss = weighted_mean(per_sample, weights)
    kept = weights.bool()
    assert kept.sum() == 4
    assert torch.allclose(loss, per_sample[kept].mean())
    (grad,) = torch.autograd.grad(loss, fake)
    norms = grad.norm(dim=1)
    assert torch.all(norms[~kept] == 0)
    assert torch.all(norms[kept] > 0)
    assert torch.equal(kept, run.plugins["topk"].last_mask.bool())


def _grads_after_first_step(plugins, k_fraction=None):
    run = Run.build(make_tiny_config("mlp", plugins, steps=1, r1_gamma=0.0))
    if k_fraction is not None:
        run.plugins["topk"].k_fraction = k_fraction
    grads = capture_first_gradients(run)
    run.train()
    return grads


def _d_main_gradients(plugins, k_fraction=None):
    run = Run.build(make_tiny_config("mlp", plugins, steps=1, r1_gamma=0.0))
    if k_fraction is not None:
        run.plugins["topk"].k_fraction = k_fraction
    run.trainer.d_main(*run.trainer.real_batch())
    return [p.grad.clone() for p in run.D.parameters()]


def test_only_gs_adversarial_term_is_masked():
    plain = _grads_after_first_step([])
    full_k = _grads_after_first_step(["topk"])  # k = B at the start: no change at all
    half_k = _grads_after_first_step(["topk"], k_fraction=0.5)
    # D's loss is untouched (from the same G: in a step, D's phase follows G's update).
    assert all(torch.equal(a, b) for a, b in zip(_d_main_gradients([]), _d_main_gradients(["topk"], 0.5)))
    assert all(torch.equal(a, b) for a, b in zip(plain["G"], full_k["G"]))
    assert not all(torch.equal(a, b) for a, b in zip(plain["G"], half_k["G"]))


def test_schedule_formulas():
    assert k_fraction_by_epoch(0, 0.99, 0.5) == 1.0
    assert k_fraction_by_epoch(10, 0.99, 0.5) == pytest.approx(0.99**10)
    assert k_fraction_by_epoch(100, 0.99, 0.5) == 0.5  # 0.99**100 = 0.366 < nu
    assert k_fraction_by_progress(0.0, 0.25, 0.5) == 1.0
    assert k_fraction_by_progress(0.5, 0.25, 0.5) == 0.5
    assert k_fraction_by_progress(0.25, 0.25, 0.5) == pytest.approx(0.25**0.25)
    assert kept_count(0.5, 64) == 32 and kept_count(0.99**10, 64) == 57 and kept_count(0.001, 8) == 1
    assert kept_count(0.59, 10) == 5  # floored, as the reference implementations do (round would give 6)
    assert kept_count(0.29, 100) == 29  # not 28: 0.29 * 100 is 28.999999999999996 in floats


def test_epoch_schedule_in_training():
    # 16 points, batch 8: two steps per epoch.
    run = Run.build(make_tiny_config("mlp", [{"name": "topk", "gamma": 0.8, "nu": 0.5}], steps=9,
                                     **{"data.num_samples": 16}))
    seen = []

    class Spy:
        name = "spy"

        @hookimpl
        def gancore_step_end(self, run):
            seen.append((run.epoch, run.plugins["topk"].k_fraction, float(run.plugins["topk"].last_mask.sum())))

    run.manager._register("spy", Spy())
    run.train()
    assert [epoch for epoch, _, _ in seen] == [0, 0, 1, 1, 2, 2, 3, 3, 4]
    for epoch, k_fraction, kept in seen:
        assert k_fraction == pytest.approx(max(0.8**epoch, 0.5))
        assert kept == kept_count(max(0.8**epoch, 0.5), 8)
    assert run.last_stats["topk/k_fraction"] == pytest.approx(0.5)


def test_progress_schedule_in_training():
    run = Run.build(make_tiny_config("mlp", [{"name": "topk", "gamma": 0.25, "nu": 0.3, "schedule": "progress"}],
                                     steps=4))
    fractions = []
    original = run.hooks.step_end

    def spy(run_, stats):
        fractions.append(run_.plugins["topk"].k_fraction)
        original(run_, stats)

    run.hooks.step_end = spy
    run.train()
    assert fractions == pytest.approx([0.25 ** (s / 4) for s in range(4)])


def test_k_survives_resume(tmp_path):
    settings = dict(r1_gamma=0.0, **{"data.num_samples": 16})
    plugins = [{"name": "topk", "gamma": 0.8}]
    straight = Run.build(make_tiny_config("mlp", plugins, steps=8, **settings), out_dir=tmp_path / "a").train()
    Run.build(make_tiny_config("mlp", plugins, steps=5, **settings), out_dir=tmp_path / "b").train()
    state = gancore.checkpoint.read_state(gancore.checkpoint.latest_checkpoint(tmp_path / "b"))
    assert state["plugins"]["topk"] == {"k_fraction": pytest.approx(0.8**2), "epoch": 2}
    resumed = Run.resume(tmp_path / "b", steps=8)
    # Restored from the checkpoint before any step runs (a fresh plugin would say 1.0 here).
    assert resumed.plugins["topk"].k_fraction == pytest.approx(0.8**2)
    resumed.train()
    assert resumed.plugins["topk"].k_fraction == straight.plugins["topk"].k_fraction
    for a, b in zip(straight.G.parameters(), resumed.G.parameters()):
        assert torch.equal(a, b)


def test_loading_state_restores_k_even_when_the_schedule_would_not():
    plugin = TopK(TopKConfig())
    plugin.gancore_load_state_dict({"k_fraction": 0.6, "epoch": 40})
    assert (plugin.k_fraction, plugin.epoch) == (0.6, 40)


def test_stacks_with_another_weighting_plugin(register_plugin):
    class Halve:
        name = "halve"

        @hookimpl
        def gancore_sample_weights(self, d_fake):
            weights = torch.ones_like(d_fake)
            weights[::2] = 0.5
            return weights

    register_plugin(Halve)
    run = Run.build(make_tiny_config("mlp", ["topk", "halve"], batch=8))
    run.plugins["topk"].k_fraction = 0.5
    d_fake = torch.arange(8, dtype=torch.float32)
    weights = run.hooks.sample_weights(run, torch.zeros(8, 2), d_fake)
    assert weights.tolist() == [0, 0, 0, 0, 0.5, 1, 0.5, 1]
    run.train()
    assert "Loss/G/weight_sum" in run.last_stats


def test_config_is_validated():
    with pytest.raises(gancore.ConfigError) as info:
        gancore.load_config(make_tiny_config("mlp", [{"name": "topk", "gamma": 2.0, "nu": 0.0, "schedule": "x"}]))
    assert info.value.problems == [
        "plugins.topk.gamma: must be <= 1.0, got 2.0",
        "plugins.topk.nu: must be > 0.0, got 0.0",
        "plugins.topk.schedule: must be one of 'epoch', 'progress', got 'x'",
    ]
    assert attrs.asdict(TopKConfig()) == {"gamma": 0.99, "nu": 0.5, "schedule": "epoch", "selection": "global"}


def test_model_card_says_what_was_used():
    run = Run.build(make_tiny_config("mlp", ["topk"]))
    card = run.hooks.model_card(run)
    assert card.startswith("### topk")
    assert "max(0.99·k, 0.5·B)" in card and "global selection" in card


def _select_on_rank(rank, world, init_file, scores, out_dir):
    import torch.distributed as dist

    from gancore.distributed import leave_process_group
    from gancore_topk.selection import global_topk_mask

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        n = scores.numel() // world
        torch.save(global_topk_mask(scores[rank * n : (rank + 1) * n], 0.5), f"{out_dir}/mask{rank}.pt")
    finally:
        leave_process_group()  # both ranks done before either tears its connections down


def test_global_selection_across_two_ranks(tmp_path):
    import torch.multiprocessing as mp

    # Rank 0 holds the four best scores: global selection keeps them all, per-rank would keep two each.
    scores = torch.tensor([9.0, 8.0, 7.0, 6.0, 1.0, 2.0, 3.0, 4.0])
    mp.spawn(_select_on_rank, args=(2, str(tmp_path / "init"), scores, str(tmp_path)), nprocs=2)
    masks = [torch.load(tmp_path / f"mask{rank}.pt", weights_only=True) for rank in range(2)]
    assert masks[0].tolist() == [1.0, 1.0, 1.0, 1.0] and masks[1].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert topk_mask(scores[4:], kept_count(0.5, 4)).tolist() == [0.0, 0.0, 1.0, 1.0]  # per rank differs


def test_docs_page_describes_every_setting():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[3] / "docs" / "methods" / "topk.md").read_text()
    for field in attrs.fields(TopKConfig):
        assert f"| `{field.name}` |" in page, f"docs/methods/topk.md does not describe {field.name}"


def test_cli_prints_the_metrics(tmp_path, capsys):
    from gancore.cli import main

    config = tmp_path / "run.toml"
    config.write_text('plugins = ["topk"]\n[backbone]\nname = "mlp"\nwidth = 16\n[data]\nname = "mog25"\n'
                      '[train]\nsteps = 3\nbatch = 16\nprogress = false\neval_samples = 200\ndevice = "cpu"\n')
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "metrics of G_ema (200 samples):" in out
    for name in ("modes_covered", "high_quality", "kl_uniform"):
        assert f"  {name}: " in out
