"""Data parallelism on the CPU: 2 gloo processes give the weights of 1 process with the same global batch."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from gancore import hookimpl
from gancore.testing import make_tiny_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(raw: dict, out_dir: str | None) -> dict[str, torch.Tensor]:
    """Train a run; its G, D and G_ema weights, image count and running path-length mean."""
    from gancore.run import Run

    run = Run.build(raw, out_dir=out_dir).train()
    result = {"nimg": torch.tensor(run.nimg), "pl_mean": run.pl_mean.detach().clone()}
    for net in ("G", "D", "G_ema"):
        result |= {f"{net}.{k}": v.detach().clone() for k, v in getattr(run, net).state_dict().items()}
    return result


def _worker(rank: int, world: int, port: int, raw: dict, out_dir: str, result_path: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world)})
    torch.set_num_threads(1)
    from gancore.distributed import leave_process_group

    try:
        weights = _train(raw, out_dir)
        save_file({k: v.contiguous() for k, v in weights.items()}, result_path if rank == 0 else f"{result_path}.rank{rank}")
    finally:
        leave_process_group()


def _two_processes(raw: dict, tmp_path) -> tuple[dict, dict]:
    result = str(tmp_path / "weights.safetensors")
    mp.spawn(_worker, args=(2, _free_port(), raw, str(tmp_path / "run"), result), nprocs=2, join=True)
    return load_file(result), load_file(result + ".rank1")


@pytest.mark.parametrize("plugins,batch_per_gpu", [([], None), (["topk"], None), (["topk"], 4)],
                         ids=["core", "topk", "topk-accumulation"])
def test_two_processes_match_one(tmp_path, plugins, batch_per_gpu):
    """G, D, G_ema, the image count and the path-length mean of 2 processes equal those of 1.

    With ``batch_per_gpu = 4`` each process accumulates 2 micro-batches of its 8 samples, while
    the single process takes its 16 at once: top-k still keeps the global top k of all 16. (Path
    length is off there: like NVIDIA's, it updates its running mean once per micro-batch.)
    """
    pl_weight = 0.0 if batch_per_gpu else 1.0
    raw = make_tiny_config("mlp", plugins, steps=4, batch=16, d_reg_interval=2, pl_weight=pl_weight, g_reg_interval=2)
    if plugins:  # make top-k bite from the first step: k falls to half the batch over the run
        raw["plugins"] = [{"name": "topk", "gamma": 0.5, "nu": 0.5, "schedule": "progress"}]
    single = _train(raw, None)
    if batch_per_gpu:
        raw["train"]["batch_per_gpu"] = batch_per_gpu
    rank0, rank1 = _two_processes(raw, tmp_path)
    assert int(rank0["nimg"]) == int(single["nimg"]) == 4 * 16  # the global batch, not this process's
    for name, value in single.items():
        assert torch.allclose(rank0[name], value, atol=1e-5), name
        assert torch.equal(rank0[name], rank1[name]), name  # the ranks stay identical
    # Rank 0 alone wrote the run folder.
    assert (tmp_path / "run" / "stats.jsonl").is_file()


def test_every_method_plugin_trains_under_two_processes(tmp_path):
    from gancore.run import Run

    teacher = tmp_path / "teacher"
    Run.build(make_tiny_config("dcgan", steps=1, **{"data.resolution": 16}), out_dir=teacher).train()
    raw = make_tiny_config(
        "dcgan", [{"name": "augment", "interval": 1, "ada_kimg": 0.01}, "topk", {"name": "glead", "distance": "mse"}, "eqgan_sa",
                  {"name": "dgl", "teacher": str(teacher)}], steps=2, batch=8,
        **{"data.resolution": 16, "backbone.g_norm": "none"},
    )
    rank0, rank1 = _two_processes(raw, tmp_path)
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    assert any(k.startswith("D.attachments.glead") for k in rank0) and any(k.startswith("G.adapters") for k in rank0)


def test_batch_must_split_evenly(monkeypatch):
    from gancore.config import ConfigError
    from gancore.run import Run

    monkeypatch.setattr("gancore.run.world_size", lambda: 3)
    with pytest.raises(ConfigError, match="train.batch: 8 is the global batch and must be divisible by the number of processes \\(3\\)"):
        Run.build(make_tiny_config("mlp", batch=8))


@pytest.mark.parametrize("plugins", [[], [{"name": "topk", "gamma": 0.5, "nu": 0.5, "schedule": "progress"}]],
                         ids=["core", "topk"])
def test_gradient_accumulation_matches_one_big_batch(plugins):
    """On the mlp (no per-forward noise, no batch statistics) accumulation is exact, top-k included:
    its k < B fakes are chosen over the whole batch, not within each micro-batch."""
    raw = make_tiny_config("mlp", plugins, steps=3, batch=16, d_reg_interval=2)
    whole = _train(raw, None)
    raw["train"]["batch_per_gpu"] = 4
    accumulated = _train(raw, None)
    for name, value in whole.items():
        assert torch.allclose(accumulated[name], value, atol=1e-5), name


def test_accumulated_topk_keeps_the_top_k_of_the_batch(register_plugin):
    """The weights hook sees the whole batch once per step, and G learns from those k fakes only."""
    from gancore import hookimpl
    from gancore.run import Run

    class Spy:
        name = "spy"

        def __init__(self):
            self.calls = []

        @hookimpl
        def gancore_sample_weights(self, d_fake):
            self.calls.append(d_fake.shape[0])

    spy = Spy()
    register_plugin(spy)
    raw = make_tiny_config("mlp", [{"name": "topk", "gamma": 0.25, "nu": 0.25, "schedule": "progress"}, "spy"],
                           steps=2, batch=16, batch_per_gpu=4)
    run = Run.build(raw).train()
    assert spy.calls == [16, 16]  # once per step, over all 4 micro-batches
    assert run.plugins["topk"].last_mask.shape == (16,)
    assert run.last_stats["Loss/G/weight_sum"] == int(16 * 0.25 ** 0.5)  # floor(k_fraction * B) kept


def test_batch_per_gpu_must_divide_the_batch():
    from gancore.config import ConfigError
    from gancore.run import Run

    with pytest.raises(ConfigError, match="train.batch_per_gpu: 3 must divide the batch of each process"):
        Run.build(make_tiny_config("mlp", batch=8, batch_per_gpu=3))


def test_resume_on_a_different_world_size(tmp_path):
    from gancore.run import Run

    raw = make_tiny_config("mlp", steps=2, batch=16, d_reg_interval=2, checkpoint_every=2)
    _two_processes(raw, tmp_path)  # two processes train steps 0-1 and checkpoint
    resumed = Run.resume(tmp_path / "run", steps=4).train()  # one process goes on
    straight = Run.build({**raw, "train": {**raw["train"], "steps": 4}}).train()
    for (name, a), b in zip(resumed.G.state_dict().items(), straight.G.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name


def test_leave_process_group_tears_the_group_down(tmp_path):
    import torch.distributed as dist

    from gancore.distributed import leave_process_group

    leave_process_group()  # no group: nothing to do
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    leave_process_group()
    assert not dist.is_initialized()


def test_the_cli_leaves_the_process_group_after_a_command(tmp_path, monkeypatch):
    """Under torchrun every rank must reach a barrier before exiting (waiting only after success)."""
    import gancore.distributed
    from gancore.cli import main

    calls = []
    monkeypatch.setattr(gancore.distributed, "leave_process_group", lambda wait_for_peers=True: calls.append(wait_for_peers))
    config = tmp_path / "tiny.toml"
    config.write_text('[backbone]\nname = "mlp"\nwidth = 8\n[data]\nname = "mog25"\nnum_samples = 64\n'
                      '[train]\nsteps = 1\nbatch = 8\ndevice = "cpu"\nprogress = false\neval_samples = 50\n')
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 0
    assert calls == [True]  # a barrier after success
    calls.clear()
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) != 0  # the folder holds a finished run
    assert calls == [False]


def test_torchrun_cli(tmp_path):
    import subprocess
    import sys

    config = tmp_path / "tiny.toml"
    config.write_text(
        '[backbone]\nname = "mlp"\nwidth = 16\n[data]\nname = "mog25"\nnum_samples = 256\n'
        '[train]\nsteps = 4\nbatch = 8\ndevice = "cpu"\nprogress = false\nlog_every = 2\neval_samples = 100\n'
    )
    # --standalone: the rendezvous port is chosen by the OS when it binds, so no other process can take it first.
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "gancore", "train", str(config), "--out", str(tmp_path / "run")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("done: 4 steps") == 1  # rank 0 alone reports
    assert (tmp_path / "run" / "checkpoints" / "step-000004" / "state.json").is_file()


class NoiseProbe:
    """Records, at every step, a draw of torch's own generator (which the networks' noise inputs and
    StyleGAN2's mixing use) and one of the plugin's own generator."""

    name = "noise_probe"

    def __init__(self):
        self.draws: list[torch.Tensor] = []

    @hookimpl
    def gancore_step_start(self, run):
        self.draws.append(torch.cat([torch.randn(3), torch.randn(3, generator=run.rng_for(self.name))]))


def _noise_worker(rank: int, world: int, port: int, raw: dict, folder: str) -> None:
    """Train 4 steps straight, and 2 steps then a resume to 4, in ``folder``; save each rank's draws and weights."""
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world)})
    torch.set_num_threads(1)
    import torch.distributed as dist

    from gancore.plugins import register_local_plugin
    from gancore.run import Run

    probe = NoiseProbe()
    register_local_plugin(probe)
    try:
        straight = Run.build({**raw, "train": {**raw["train"], "steps": 4}}, out_dir=f"{folder}/straight").train()
        Run.build({**raw, "train": {**raw["train"], "steps": 2}}, out_dir=f"{folder}/resumed").train()
        resumed = Run.resume(f"{folder}/resumed", steps=4).train()
        result = {"draws": torch.stack(probe.draws)}
        for label, run in (("straight", straight), ("resumed", resumed)):
            result |= {f"{label}.{net}.{k}": v.detach().clone().contiguous()
                       for net in ("G", "D", "G_ema") for k, v in getattr(run, net).state_dict().items()}
        save_file(result, f"{folder}/rank{rank}.safetensors")
    finally:
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def test_every_rank_draws_its_own_noise_and_a_two_process_resume_is_exact(tmp_path):
    raw = make_tiny_config("stylegan2", ["noise_probe"], batch=8, checkpoint_every=2, **{"backbone.style_mixing": 0.9})
    mp.spawn(_noise_worker, args=(2, _free_port(), raw, str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1))
    # Steps 0-3 straight, then 0-1 and 2-3 again (resumed): 8 draws a rank, each differing between ranks.
    assert rank0["draws"].shape == (8, 6)
    assert not torch.isclose(rank0["draws"], rank1["draws"]).any()
    assert torch.equal(rank0["draws"][:4], rank0["draws"][4:])  # the same streams, resumed or not
    assert torch.equal(rank1["draws"][:4], rank1["draws"][4:])
    for name, value in rank0.items():
        if name.startswith("straight."):
            resumed = name.replace("straight.", "resumed.", 1)
            assert torch.equal(value, rank0[resumed]), name  # byte-identical to the uninterrupted run
            if not name.endswith("w_avg"):  # each rank keeps its own running mean of w (rank 0's is saved)
                assert torch.equal(value, rank1[name]) and torch.equal(value, rank1[resumed]), name
