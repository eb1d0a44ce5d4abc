"""The run and its training step: phases Dmain, Dreg, Gmain, Greg and the EMA of G."""

import contextlib
import copy
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import attrs
import torch
from torch import Tensor, nn
from torch.autograd.profiler import record_function

from gancore import checkpoint as ckpt
from gancore.backbone import PLUGIN_MODULE_GROUPS, BackboneSpec, DataInfo, count_parameters
from gancore.config import META_KEY, ConfigError, RunConfig, parse_run_config
from gancore.data import Dataset, batch_indices, build_dataset, epoch_of
from gancore.distributed import (
    all_reduce_mean,
    average_gradients,
    init_from_environment,
    is_distributed,
    rank,
    rank_slice,
    world_size,
)
from gancore.hooks import NamedTerm
from gancore.losses import (
    d_adversarial_loss,
    g_adversarial_loss,
    path_length_penalty,
    r1_penalty,
    weighted_mean,
)
from gancore.plugins import PluginManager
from gancore.samples import save_samples
from gancore.sampling import draw_samples

if TYPE_CHECKING:  # pragma: no cover
    from gancore.metrics.evaluate import Evaluation

__all__ = ["Run", "resolve_device"]

#: Offset of the seed of the fixed sample-grid latents from the run's seed.
_GRID_SEED_OFFSET = 0x5EED
#: Offset of the seed of the evaluation latents from the run's seed.
_EVAL_SEED_OFFSET = 0xE7A1


def resolve_device(name: str) -> torch.device:
    """Turn ``train.device`` into a torch device ("auto": CUDA when available, else CPU)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"train.device is {name!r} but CUDA is not available here")
    return device


@contextlib.contextmanager
def _requires_grad(module: nn.Module, flag: bool) -> Iterator[None]:
    previous = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(flag)
    try:
        yield
    finally:
        for p, was in zip(module.parameters(), previous):
            p.requires_grad_(was)


def _lazy_adam(params: Any, lr: float, betas: tuple[float, float], interval: int | None) -> torch.optim.Adam:
    # StyleGAN2's lazy regularisation: scale lr and betas so the effective update matches.
    if interval:
        ratio = interval / (interval + 1)
        lr, betas = lr * ratio, (betas[0] ** ratio, betas[1] ** ratio)
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=1e-8)


class Run:
    """One training session: config, plugins, data, networks, optimizers and counters.

    Build it with :meth:`build` (or :func:`gancore.train`), continue one with :meth:`resume`.
    ``out_dir`` None keeps everything in memory (no stats file, samples or checkpoints).
    """

    def __init__(
        self,
        config: RunConfig,
        manager: PluginManager,
        backbone: BackboneSpec,
        data_info: DataInfo,
        dataset: Dataset | None,
        device: torch.device,
        out_dir: Path | None,
    ):
        self.config = config
        self.manager = manager
        self.hooks = manager.hooks
        self.backbone = backbone
        self.data_info = data_info
        self.dataset = dataset
        self.device = device
        self.out_dir = out_dir
        self.plugins: dict[str, Any] = dict(manager.run_plugins)
        #: False when the run is rebuilt only to load or sample its networks (no training).
        self.for_training = True
        #: (round, rounds) of gradient accumulation within the current phase.
        self._accumulation = (0, 1)
        self.step = 0
        self.nimg = 0
        self.rng = torch.Generator().manual_seed(config.train.seed)
        self.pl_mean = torch.zeros((), device=device)
        self.G: nn.Module
        self.D: nn.Module
        self.G_ema: nn.Module
        #: The networks the main phases run (``torch.compile`` wrappers with ``train.compile``).
        self.G_main: nn.Module
        self.D_main: nn.Module
        self.opt_G: torch.optim.Optimizer | None = None
        self.opt_D: torch.optim.Optimizer | None = None
        self.last_stats: dict[str, float] = {}
        #: The newest evaluation (``Metrics/...``), empty until the first one.
        self.metrics: dict[str, float] = {}
        #: How the newest ``Metrics/fid`` etc. were measured (extractor, sample counts, reference set).
        self.metrics_protocol: dict[str, Any] = {}
        #: The lowest FID measured so far (its checkpoint is ``checkpoints/best``).
        self.best_fid: float | None = None
        #: The loaded feature extractor of :meth:`measure`, with its name.
        self._extractor: tuple[str, nn.Module] | None = None
        from gancore.stats import StatsLog

        self.log = StatsLog(
            out_dir / "stats.jsonl" if out_dir is not None else None,
            out_dir / "tensorboard" if out_dir is not None and config.train.tensorboard else None,
        )

    # -- building -----------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        config: RunConfig | Mapping[str, Any],
        out_dir: str | Path | None = None,
        *,
        manager: PluginManager | None = None,
        dataset: Dataset | None = None,
        data_info: DataInfo | None = None,
        for_training: bool = True,
    ) -> "Run":
        """Build a run: plugins, data, networks, ``gancore_setup``, G_ema and optimizers.

        ``config`` is a :class:`RunConfig` or a raw run-file dict. Without ``dataset`` the data
        set named in the config is loaded, unless ``data_info`` is given and ``for_training`` is
        False (rebuilding a run to sample from it). Nothing is written until training starts.
        """
        manager = manager or PluginManager()
        if not isinstance(config, RunConfig):
            config = parse_run_config(
                config, manager.backbone_config_class, manager.config_class, source="<config>"
            )
        torch.manual_seed(config.train.seed)
        try:
            device = init_from_environment(config.train.device) if for_training else None
            device = device or resolve_device(config.train.device)
        except RuntimeError as exc:
            raise ConfigError("the run config", [f"train.device: {exc}"]) from None
        if rank() != 0:
            out_dir = None  # rank 0 alone writes logs, samples and checkpoints
        if for_training and config.train.batch % world_size():
            raise ConfigError("the run config", [
                f"train.batch: {config.train.batch} is the global batch and must be divisible by the "
                f"number of processes ({world_size()})"
            ])
        per_process = config.train.batch // world_size()
        if for_training and config.train.batch_per_gpu and per_process % config.train.batch_per_gpu:
            raise ConfigError("the run config", [
                f"train.batch_per_gpu: {config.train.batch_per_gpu} must divide the batch of each process "
                f"({config.train.batch} / {world_size()} = {per_process}); the rest is gradient accumulation"
            ])
        if dataset is None and (for_training or data_info is None):
            dataset = build_dataset(config.data)
        info = dataset.info if dataset is not None else data_info
        assert info is not None
        backbone = manager.backbone(config.backbone.name)
        try:
            backbone_config = backbone.resolve_config(config.backbone.config, info)
        except ValueError as exc:
            raise ConfigError("the run config", [f"backbone: {exc}"]) from None
        config = config.evolve(backbone=attrs.evolve(config.backbone, config=backbone_config))
        manager.load_run_plugins(config.plugins)
        manager.check_pending()
        manager.check_requirements(backbone)
        if config.train.pl_weight > 0 and "path_length" not in backbone.capabilities:
            raise ConfigError(
                "the run config",
                [f"train.pl_weight: backbone {backbone.name!r} has no path_length capability; set it to 0"],
            )
        run = cls(config, manager, backbone, info, dataset, device, Path(out_dir) if out_dir else None)
        run.for_training = for_training
        run.G = backbone.generator_class(backbone_config).to(device)
        run.D = backbone.discriminator_class(backbone_config).to(device)
        run.hooks.setup(run)
        run.G.to(device)
        run.D.to(device)
        run.G_ema = copy.deepcopy(run.G).eval().requires_grad_(False)
        train = config.train
        run.G_main, run.D_main = run.G, run.D
        if train.compile and for_training:
            # Only the main phases: compiled graphs cannot be differentiated twice (R1, path length).
            run.G_main = torch.compile(run.G, backend=train.compile_backend)
            run.D_main = torch.compile(run.D, backend=train.compile_backend)
        run.opt_G = _lazy_adam(
            run.G.parameters(), train.g_lr, train.betas, train.g_reg_interval if train.pl_weight > 0 else None
        )
        run.opt_D = _lazy_adam(
            run.D.parameters(), train.d_lr, train.betas, train.d_reg_interval if train.r1_gamma > 0 else None
        )
        return run

    @classmethod
    def resume(
        cls, path: str | Path, steps: int | None = None, *, manager: PluginManager | None = None
    ) -> "Run":
        """Rebuild a run from its newest checkpoint (or a given checkpoint folder).

        ``steps`` extends (or shortens) the run's total length. The run keeps writing into the
        run folder that holds the checkpoint.
        """
        checkpoint = ckpt.find_checkpoint(path)
        state = ckpt.read_state(checkpoint)
        raw = dict(state["config"])
        if steps is not None:
            raw["train"] = {**raw.get("train", {}), "steps": steps}
        run_dir = checkpoint.parent.parent
        run = cls.build(raw, out_dir=run_dir, manager=manager)
        run.load_checkpoint(checkpoint, state)
        return run

    @classmethod
    def for_sampling(cls, path: str | Path, *, manager: PluginManager | None = None) -> "Run":
        """Rebuild a run from a checkpoint to sample from it, without loading its data set."""
        return cls.from_checkpoint(path, ("G_ema",), manager=manager)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, components: tuple[str, ...] = ("G_ema",), *, manager: PluginManager | None = None
    ) -> "Run":
        """Rebuild a run's networks from a run or checkpoint folder, loading ``components``
        (any of ``"G"``, ``"D"``, ``"G_ema"``) strictly; no data set, no optimizers' state.

        The run's plugins are set up as in training, so modules they attach are part of the
        networks (and a plugin that is not installed is an error naming it).
        """
        checkpoint = ckpt.find_checkpoint(path)
        state = ckpt.read_state(checkpoint)
        info = DataInfo(**{k: tuple(v) if k == "shape" else v for k, v in state["data_info"].items()})
        run = cls.build(state["config"], manager=manager, data_info=info, for_training=False)
        for component in components:
            if component not in ("G", "D", "G_ema"):
                raise ValueError(f"unknown component {component!r}; expected G, D or G_ema")
            ckpt.load_module(getattr(run, component), checkpoint / f"{component}.safetensors")
        run.step, run.nimg = state["step"], state["nimg"]
        return run

    # -- counters -----------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        """The data epoch of the current step (0-based)."""
        return epoch_of(len(self.dataset), self.config.train.batch, self.step) if self.dataset else 0

    @property
    def kimg(self) -> float:
        """Thousands of real images shown to D so far."""
        return self.nimg / 1000

    def parameter_counts(self) -> dict[str, int]:
        """Parameter counts of G, D and G_ema, of modules plugins own outside them (e.g. a teacher),
        of the networks' top-level blocks, and of the modules plugins attached."""
        counts = {"G": count_parameters([self.G]), "D": count_parameters([self.D]), "G_ema": count_parameters([self.G_ema])}
        counts.update(self.hooks.parameter_counts(self))
        for net_name, net in (("G", self.G), ("D", self.D)):
            for child_name, child in net.named_children():
                if child_name not in PLUGIN_MODULE_GROUPS and count_parameters([child]):
                    counts[f"{net_name}.{child_name}"] = count_parameters([child])
            for group in PLUGIN_MODULE_GROUPS:
                modules = getattr(net, group, None)
                if modules is not None:
                    for name, module in modules.items():
                        counts[f"{net_name}.{group}.{name}"] = count_parameters([module])
        return counts

    # -- inputs -------------------------------------------------------------------------------

    def _real_batch(self) -> tuple[Tensor, Tensor | None]:
        assert self.dataset is not None, "this run was built without a data set"
        batch = self.config.train.batch
        indices = batch_indices(len(self.dataset), batch, self.step, self.config.train.seed)[rank_slice(batch)]
        x, c = self.dataset.get(indices)
        return x.to(self.device, non_blocking=True), None if c is None else c.to(self.device)

    def generator_inputs(
        self, batch_size: int, c: Tensor | None = None, rng: torch.Generator | None = None
    ) -> dict[str, Any]:
        """Latents ``z``, labels ``c`` and the plugins' ``cond`` for one G forward."""
        rng = self.rng if rng is None else rng
        # Under data parallelism every rank draws the global batch and keeps its slice.
        shard = rank_slice(batch_size * world_size()) if rng is self.rng and is_distributed() else None
        size = batch_size * world_size() if shard is not None else batch_size
        z = torch.randn(size, self.G.z_dim, generator=rng).to(self.device)
        if c is None and self.data_info.c_dim > 0:
            labels = torch.randint(self.data_info.c_dim, (size,), generator=rng)
            c = torch.nn.functional.one_hot(labels, self.data_info.c_dim).float().to(self.device)
            c = c[shard] if shard is not None else c
        cond = self.hooks.generator_inputs(self, size, rng)
        if shard is not None:
            z = z[shard]
            cond = {key: value[shard] for key, value in cond.items()}
        return {"z": z, "c": c, "cond": cond}

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.config.train.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- the training step --------------------------------------------------------------------

    def train_step(self) -> dict[str, float]:
        """Run one iteration (all phases, EMA, hooks) and return its statistics."""
        train = self.config.train
        self.G.train()
        self.D.train()
        self.hooks.step_start(self)
        stats: dict[str, float] = {}
        real, c_real = self._real_batch()
        batch = real.shape[0]
        rounds = batch // train.batch_per_gpu if train.batch_per_gpu else 1
        reals = real.chunk(rounds)
        labels = c_real.chunk(rounds) if c_real is not None else [None] * rounds

        def accumulated(phase: Any, inputs: list[tuple[Any, Any]]) -> None:
            parts = []
            for index, args in enumerate(inputs):
                self._accumulation = (index, rounds)
                parts.append(phase(*args))
            self._accumulation = (0, 1)
            stats.update({key: sum(p[key] for p in parts) / len(parts) for key in parts[0]})

        accumulated(self.d_main_phase, list(zip(reals, labels)))
        if train.r1_gamma > 0 and self.step % train.d_reg_interval == 0:
            accumulated(self.d_reg_phase, list(zip(reals, labels)))
        accumulated(self.g_main_phase, [(r.shape[0], c) for r, c in zip(reals, labels)])
        if train.pl_weight > 0 and self.step % train.g_reg_interval == 0:
            accumulated(self.g_reg_phase, [(r.shape[0], c) for r, c in zip(reals, labels)])
        with record_function("Gema"):
            self._update_ema(batch)
        self.nimg += batch
        self.hooks.step_end(self, stats)
        self.step += 1
        self.last_stats = stats
        return stats

    def d_main_phase(self, real: Tensor, c_real: Tensor | None = None) -> dict[str, float]:
        """Dmain: one step of D's optimizer on its adversarial loss and the plugins' D terms.

        G is frozen (no gradients to its weights, which it still passes through). Returns the
        phase's statistics.
        """
        train = self.config.train
        stats: dict[str, float] = {}
        with record_function("Dmain"), _requires_grad(self.G, False):
            inputs = self.generator_inputs(real.shape[0], c_real)
            g_features = None
            with torch.no_grad(), self._autocast():
                if self.hooks.wants("gancore_d_loss", "g_features"):
                    fake, g_features = self.G_main(inputs["z"], inputs["c"], inputs["cond"], features=True)
                    g_features = {res: f.float() for res, f in g_features.items()}
                else:
                    fake = self.G_main(inputs["z"], inputs["c"], inputs["cond"])
                fake = fake.float()
            d_input_real, d_input_fake = self.hooks.before_d_step(self, real, fake)
            with self._autocast():
                d_real, d_real_features = self._discriminate(
                    d_input_real, c_real, "gancore_d_loss", "d_real_features", self.D_main
                )
                d_fake, d_fake_features = self._discriminate(
                    d_input_fake, inputs["c"], "gancore_d_loss", "d_fake_features", self.D_main
                )
            loss_real, loss_fake = d_adversarial_loss(d_real, d_fake, train.loss)
            terms = self.hooks.d_loss(
                self, d_input_real, d_input_fake, d_real, d_fake, d_real_features, d_fake_features, g_features
            )
            loss = loss_real.mean() + loss_fake.mean() + _sum_terms(terms, d_real)
            self._optimize(self.opt_D, loss)
            stats.update({
                "Loss/D/real": float(loss_real.detach().mean()),
                "Loss/D/fake": float(loss_fake.detach().mean()),
                "Loss/scores/real": float(d_real.detach().mean()),
                "Loss/scores/fake": float(d_fake.detach().mean()),
            })
            _report_terms(stats, "Loss/D", terms)
            stats["Loss/D/total"] = float(loss.detach())
        return stats

    def d_reg_phase(self, real: Tensor, c_real: Tensor | None = None) -> dict[str, float]:
        """Dreg: one step of D's optimizer on lazy R1 (times the interval) and the plugins' Dreg terms."""
        train = self.config.train
        stats: dict[str, float] = {}
        with record_function("Dreg"), _requires_grad(self.G, False):
            real_reg = real.detach().requires_grad_(True)
            d_real, d_real_features = self._discriminate(real_reg, c_real, "gancore_d_reg_loss", "d_real_features")
            r1 = r1_penalty(d_real, real_reg)
            terms = self.hooks.d_reg_loss(self, real_reg, d_real, d_real_features)
            loss = (r1.mean() * (train.r1_gamma / 2) + d_real.mean() * 0) * train.d_reg_interval
            loss = loss + _sum_terms(terms, d_real)
            self._optimize(self.opt_D, loss)
            stats["Loss/Dreg/r1"] = float(r1.detach().mean())
            _report_terms(stats, "Loss/Dreg", terms)
        return stats

    def g_main_phase(self, batch: int, c_real: Tensor | None = None) -> dict[str, float]:
        """Gmain: one step of G's optimizer on its (weighted) adversarial loss, plugin and teacher terms.

        D is frozen. ``c_real`` supplies the labels of conditional runs.
        """
        train = self.config.train
        stats: dict[str, float] = {}
        with record_function("Gmain"), _requires_grad(self.D, False):
            inputs = self.generator_inputs(batch, c_real)
            with self._autocast():
                fake = self.G_main(inputs["z"], inputs["c"], inputs["cond"]).float()
                d_fake, d_fake_features = self._discriminate(
                    fake, inputs["c"], "gancore_g_loss", "d_fake_features", self.D_main
                )
            per_sample = g_adversarial_loss(d_fake, train.loss)
            weights = self.hooks.sample_weights(self, fake, d_fake.detach())
            if weights is not None and is_distributed():
                # The global weighted mean: this rank's weighted sum over the ranks' mean weight sum.
                total = all_reduce_mean(weights.sum().to(per_sample.dtype))
                adversarial = (weights.to(per_sample.dtype) * per_sample).sum() / total.clamp_min(1e-12)
            else:
                adversarial = weighted_mean(per_sample, weights)
            terms = self.hooks.g_loss(self, fake, d_fake, inputs, d_fake_features)
            terms += self.hooks.teacher_loss(self, fake, inputs, weights)
            loss = adversarial + _sum_terms(terms, adversarial)
            self._optimize(self.opt_G, loss)
            stats["Loss/G/adversarial"] = float(adversarial.detach())
            if weights is not None:
                stats["Loss/G/weight_sum"] = float(weights.sum())
            _report_terms(stats, "Loss/G", terms)
            stats["Loss/G/total"] = float(loss.detach())
        return stats

    def g_reg_phase(self, batch: int, c_real: Tensor | None = None) -> dict[str, float]:
        """Greg: one step of G's optimizer on the lazy path-length penalty (times the interval)."""
        train = self.config.train
        stats: dict[str, float] = {}
        with record_function("Greg"), _requires_grad(self.D, False):
            pl_batch = max(batch // train.pl_batch_shrink, 1)
            inputs = self.generator_inputs(pl_batch, None if c_real is None else c_real[:pl_batch])
            w = self.G.mapping(inputs["z"], inputs["c"])
            if not w.requires_grad:
                w.requires_grad_(True)
            images = self.G.synthesis(w, cond=inputs["cond"])
            penalty, lengths, self.pl_mean = path_length_penalty(
                images, w, self.pl_mean, train.pl_decay, reduce=all_reduce_mean
            )
            loss = (penalty.mean() * train.pl_weight + images[:, :1].mean() * 0) * train.g_reg_interval
            self._optimize(self.opt_G, loss)
            stats["Loss/Greg/pl_penalty"] = float(penalty.detach().mean())
            stats["Loss/Greg/pl_length"] = float(lengths.detach().mean())
        return stats

    def _discriminate(
        self, x: Tensor, c: Tensor | None, hook: str, argument: str, net: nn.Module | None = None
    ) -> tuple[Tensor, dict[int, Tensor] | None]:
        """D's logits for ``x`` (as float), with its block outputs when ``hook`` wants ``argument``."""
        net = self.D if net is None else net
        if not self.hooks.wants(hook, argument):
            return net(x, c).float(), None
        logits, features = net(x, c, features=True)
        return logits.float(), features

    def _optimize(self, optimizer: torch.optim.Optimizer | None, loss: Tensor) -> None:
        """Backward; with gradient accumulation, step after the last round (gradients averaged over ranks)."""
        assert optimizer is not None
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {float(loss.detach())} at step {self.step}")
        index, rounds = self._accumulation
        if index == 0:
            optimizer.zero_grad(set_to_none=True)
        (loss / rounds if rounds > 1 else loss).backward()
        if index == rounds - 1:
            average_gradients(p for group in optimizer.param_groups for p in group["params"])
            optimizer.step()

    @torch.no_grad()
    def _update_ema(self, batch: int) -> None:
        train = self.config.train
        ema_nimg = train.ema_kimg * 1000
        if train.ema_rampup is not None:
            ema_nimg = min(ema_nimg, self.nimg * train.ema_rampup)
        beta = 0.5 ** (batch / max(ema_nimg, 1e-8))
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    # -- the loop -----------------------------------------------------------------------------

    def train(self, steps: int | None = None) -> "Run":
        """Train until ``steps`` (default ``train.steps``) steps are done; write logs, samples, checkpoints."""
        train = self.config.train
        total = train.steps if steps is None else steps
        if self.out_dir is not None:
            self._prepare_out_dir()
        progress = _progress(total, self.step, enabled=train.progress and rank() == 0)
        started = run_started = time.perf_counter()
        first_step = self.step
        steps_since_log = 0
        try:
            while self.step < total:
                self.log.add(self.train_step())
                steps_since_log += 1
                done = self.step
                last = done == total
                if (train.eval_every and done % train.eval_every == 0) or last:
                    self.log.add(self.evaluate())
                    self._keep_best()
                if done % train.log_every == 0 or last:
                    now = time.perf_counter()
                    line = self.log.flush(done, self.kimg, (now - started) / steps_since_log)
                    started, steps_since_log = now, 0
                    progress.set_postfix(_short_stats(line), refresh=False)
                if self.out_dir is not None:
                    if (train.sample_every and done % train.sample_every == 0) or last:
                        self.save_sample_grid(self.out_dir / "samples" / f"step-{done:06d}.png")
                    if (train.checkpoint_every and done % train.checkpoint_every == 0) or last:
                        self.save_checkpoint()
                progress.update(1)
        finally:
            progress.close()
            self.log.close()
        if self.out_dir is not None and self.step > first_step:
            self._write_summary(time.perf_counter() - run_started)
        return self

    def evaluate(self) -> dict[str, float]:
        """Measure ``train.eval_samples`` samples of G_ema: the data set's own metrics (if any) and
        ``train.metrics`` (FID, KID, precision/recall with ``train.metrics_extractor``)."""
        if self.dataset is None:
            return {}
        train = self.config.train
        seed = train.seed + _EVAL_SEED_OFFSET
        results: dict[str, float] = {}
        if self.dataset.has_quality_metrics:
            results.update(self.dataset.quality_metrics(self.sample(train.eval_samples, seed=seed)) or {})
        if train.metrics and self.data_info.is_image:
            evaluation = self.measure(train.metrics, train.eval_samples, seed)
            results.update(evaluation.metrics)
            self.metrics_protocol = evaluation.protocol
        if results:
            self.metrics = dict(results)
        return results

    def measure(
        self,
        metrics: Sequence[str],
        n: int,
        seed: int = 0,
        extractor: str | None = None,
        dataset: Dataset | None = None,
        cache_dir: Path | None = None,
    ) -> "Evaluation":
        """FID, KID and/or precision/recall of ``n`` G_ema samples (latents of ``seed``) against the
        first ``n`` items of ``dataset`` (default: the run's), with the features of ``extractor``
        (default: ``train.metrics_extractor``, else the data set's default). Reference features
        are cached in ``cache_dir`` (default: ``<run>/reference``, or the user cache folder)."""
        from gancore.metrics.evaluate import default_cache_dir, evaluate
        from gancore.metrics.extractors import default_extractor

        dataset = dataset if dataset is not None else self.dataset
        if dataset is None:
            raise ValueError("this run has no data set to measure against; pass one")
        name = extractor or self.config.train.metrics_extractor or default_extractor(self.config.data.name)
        if self._extractor is None or self._extractor[0] != name:
            self._extractor = (name, self.manager.feature_extractor(name, self.device))
        if cache_dir is None:
            cache_dir = self.out_dir / "reference" if self.out_dir is not None else default_cache_dir()
        return evaluate(
            lambda count, s: self.sample(count, seed=s), dataset, self.config.data, name, self._extractor[1],
            tuple(metrics), n, seed, cache_dir,
        )

    def to(self, device: torch.device | str) -> "Run":
        """Move G, D and G_ema (and where plugins draw G's inputs) to ``device``; returns the run."""
        self.device = torch.device(device)
        for net in (self.G, self.D, self.G_ema):
            net.to(self.device)
        return self

    def _keep_best(self) -> None:
        """Save ``checkpoints/best`` when the newest FID is the lowest so far."""
        fid = self.metrics.get("Metrics/fid")
        if fid is None or (self.best_fid is not None and fid >= self.best_fid):
            return
        self.best_fid = fid
        if self.out_dir is not None:
            self.save_checkpoint(name="best")

    def _write_summary(self, seconds: float) -> None:
        assert self.out_dir is not None
        summary = {
            "step": self.step,
            "kimg": self.kimg,
            "seconds": round(seconds, 3),
            "metrics": self.metrics,
            "metrics_protocol": self.metrics_protocol,
            "best_fid": self.best_fid,
            "params": self.parameter_counts(),
            "plugins": self.config.plugin_names,
        }
        path = self.out_dir / "summary.json"
        tmp = path.with_name(".summary.json.tmp")
        tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)

    def _prepare_out_dir(self) -> None:
        assert self.out_dir is not None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / "config.json"
        tmp = path.with_name(".config.json.tmp")
        tmp.write_text(json.dumps(self.resolved_config(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)

    def resolved_config(self) -> dict[str, Any]:
        """The fully resolved config in run-file shape, with versions under ``gancore``."""
        import gancore

        raw = self.config.to_dict()
        raw[META_KEY] = {
            "version": gancore.__version__,
            "backbone_plugin": self.manager._backbone_owner.get(self.backbone.name),
            "plugins": self.manager.versions(
                [*self.config.plugin_names, self.manager._backbone_owner.get(self.backbone.name, "")]
            ),
            "data_info": _data_info_dict(self.data_info),
        }
        return raw

    # -- samples ------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self,
        n: int,
        seed: int = 0,
        network: str = "G_ema",
        c: Tensor | None = None,
        cond: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        """Generate ``n`` samples from fixed latents of ``seed`` with G_ema (or ``"G"``).

        ``c`` gives the labels (default: the classes in turn). ``cond`` gives some of G's extra
        inputs yourself (e.g. EqGAN-SA's ``heatmap``), each ``[n, ...]``; they replace what the
        plugins would draw, and the rest is drawn as usual.
        """
        return draw_samples(
            getattr(self, network), n, seed, c, cond, lambda size, rng: self.hooks.generator_inputs(self, size, rng)
        )

    def save_sample_grid(self, path: Path, n: int | None = None) -> Path:
        """Save a grid (or, for 2-D data, a scatter plot with real points) from the fixed latents."""
        seed = self.config.train.seed + _GRID_SEED_OFFSET
        if self.data_info.is_image:
            return save_samples(path, self.sample(n or self.config.train.grid, seed=seed))
        count = n or 2000
        real = None
        if self.dataset is not None:
            real = self.dataset.get(torch.arange(min(count, len(self.dataset))))[0]
        return save_samples(path, self.sample(count, seed=seed), real)

    # -- publishing ---------------------------------------------------------------------------

    def push_to_hub(
        self, repo_id: str, private: bool = False, revision: str | None = None, commit_message: str | None = None
    ) -> str:
        """Save a checkpoint of the current step (unless the newest is of it) and publish it to
        the Hub repo ``repo_id`` (see :func:`gancore.push_to_hub`); returns the commit URL."""
        from gancore.pretrained import push_to_hub

        if self.out_dir is None:
            raise ValueError("this run has no run folder; build it with out_dir=... to publish it")
        latest = ckpt.latest_checkpoint(self.out_dir)
        if latest is None or ckpt.read_state(latest)["step"] != self.step:
            latest = self.save_checkpoint()
        return push_to_hub(latest, repo_id, private=private, revision=revision, commit_message=commit_message)

    # -- checkpoints --------------------------------------------------------------------------

    def save_checkpoint(self, name: str | None = None) -> Path:
        """Write a checkpoint of the current step into ``out_dir/checkpoints`` atomically
        (``step-NNNNNN``, or ``name`` such as ``best``)."""
        if self.out_dir is None:
            raise RuntimeError("this run has no output folder; build it with out_dir to save checkpoints")
        assert self.opt_G is not None and self.opt_D is not None
        extra = {"rng.run": self.rng.get_state(), "rng.torch": torch.get_rng_state(), "pl_mean": self.pl_mean}
        if self.device.type == "cuda":
            extra["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        state = {
            "step": self.step,
            "nimg": self.nimg,
            "config": self.resolved_config(),
            "data_info": _data_info_dict(self.data_info),
            "plugins": self.hooks.state_dict(self),
            "metrics": self.metrics,
            "metrics_protocol": self.metrics_protocol,
            "best_fid": self.best_fid,
        }
        return ckpt.write_checkpoint(
            self.out_dir / "checkpoints",
            self.step,
            {"G": self.G, "G_ema": self.G_ema, "D": self.D},
            {"G": self.opt_G, "D": self.opt_D},
            extra,
            state,
            keep=self.config.train.keep_checkpoints,
            name=name,
        )

    def load_checkpoint(self, checkpoint: Path, state: Mapping[str, Any] | None = None) -> None:
        """Load networks, optimizers, counters, RNG states and plugin state from a checkpoint."""
        state = ckpt.read_state(checkpoint) if state is None else state
        for name in ("G", "G_ema", "D"):
            ckpt.load_module(getattr(self, name), checkpoint / f"{name}.safetensors")
        assert self.opt_G is not None and self.opt_D is not None
        ckpt.load_optimizer(self.opt_G, checkpoint / "optim-G.safetensors", state["optimizers"]["G"])
        ckpt.load_optimizer(self.opt_D, checkpoint / "optim-D.safetensors", state["optimizers"]["D"])
        extra = ckpt.read_tensors(checkpoint / "run.safetensors")
        self.rng.set_state(extra["rng.run"])
        torch.set_rng_state(extra["rng.torch"])
        if self.device.type == "cuda" and "rng.cuda" in extra:
            torch.cuda.set_rng_state(extra["rng.cuda"], self.device)
        self.pl_mean = extra["pl_mean"].to(self.device)
        self.step, self.nimg = int(state["step"]), int(state["nimg"])
        self.metrics = dict(state.get("metrics") or {})
        self.metrics_protocol = dict(state.get("metrics_protocol") or {})
        self.best_fid = state.get("best_fid")
        self.hooks.load_state_dict(self, state.get("plugins", {}))
        if self.out_dir is not None:
            # Lines logged after this checkpoint (by a run that then stopped) are logged again.
            self.log.truncate_after(self.step)


def _data_info_dict(info: DataInfo) -> dict[str, Any]:
    return {"name": info.name, "shape": list(info.shape), "c_dim": info.c_dim}


def _sum_terms(terms: list[NamedTerm], like: Tensor) -> Tensor:
    total = like.new_zeros(())
    for _, term in terms:
        total = total + term.weighted.float()
    return total


def _report_terms(stats: dict[str, float], prefix: str, terms: list[NamedTerm]) -> None:
    for key, term in terms:
        stats[f"{prefix}/{key}"] = float(term.scalar.detach())


def _short_stats(line: Mapping[str, Any]) -> dict[str, str]:
    short = {}
    for key, label in (("Loss/D/total", "D"), ("Loss/G/total", "G")):
        if key in line:
            short[label] = f"{line[key]:.3f}"
    return short


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return _NoProgress()
    import sys

    from tqdm.auto import tqdm

    # Redraw less often when the output is a log file rather than a terminal.
    interval = 0.1 if sys.stderr.isatty() else 10.0
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, desc="train", mininterval=interval)
