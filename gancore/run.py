"""The run: config, plugins, data, networks and optimizers, and how a run is built, resumed and checkpointed."""

import contextlib
import copy
import os
import shlex
import sys
import zlib
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import attrs
import torch
from torch import Tensor, nn

from gancore import checkpoint as ckpt, evaluation, loop
from gancore.backbone import PLUGIN_MODULE_GROUPS, BackboneSpec, DataInfo, count_parameters
from gancore.config import META_KEY, ConfigError, DataConfig, RunConfig, TrainConfig, apply_overrides, parse_run_config
from gancore.data import DataError, Dataset, build_dataset, epoch_of
from gancore.data.base import mix_seed
from gancore.distributed import init_from_environment, is_distributed, rank, rank_slice, world_size
from gancore.plugins import PluginManager
from gancore.runfolder import RunLock
from gancore.samples import save_samples
from gancore.sampling import draw_samples
from gancore.trainer import Trainer

__all__ = ["Run", "resolve_device"]

#: Offset of the seed of the fixed sample-grid latents from the run's seed.
_GRID_SEED_OFFSET = 0x5EED
#: Mixed into the run's seed for the device noise generator.
_NOISE_SEED_TAG = 0x9015E
#: Mixed into the run's seed, with the rank and the step, for torch's own generator under data parallelism.
_RANK_STREAM_TAG = 0x5A4E
#: Mixed into the run's seed, with the plugin's name, the rank and the step, for :meth:`Run.rng_for`.
_PLUGIN_STREAM_TAG = 0x9106


def resolve_device(name: str) -> torch.device:
    """Turn ``train.device`` into a torch device ("auto": CUDA when available, else CPU)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"train.device is {name!r} but CUDA is not available here")
    return device


def lazy_adam_settings(
    lr: float, betas: tuple[float, float], interval: int, eps: float = 1e-8, lazy: bool = True
) -> dict[str, Any]:
    """Adam's ``lr``, ``betas`` and ``eps`` for a network whose regulariser runs every ``interval``
    steps in its own phase.

    StyleGAN2's lazy regularisation: lr and betas are scaled by ``interval / (interval + 1)`` so
    the effective update matches a regulariser applied every step. As in NVIDIA's training loop
    this depends only on the interval, not on whether the regulariser's weight is zero; with
    ``lazy`` False (no lazy regulariser runs: ``train.lazy_scaling = "active"``) they are Adam's
    own, as BigGAN's optimizers are.
    """
    ratio = interval / (interval + 1) if lazy else 1.0
    return {"lr": lr * ratio, "betas": (betas[0] ** ratio, betas[1] ** ratio), "eps": eps}


def optimizer_settings(train: TrainConfig, network: str) -> dict[str, Any]:
    """Adam's settings for ``network`` (``"G"`` or ``"D"``) under ``[train]``: the learning rate,
    betas and eps, lazily scaled unless ``lazy_scaling = "active"`` and the network's lazy
    regulariser (path length for G, R1 for D) is off."""
    if network == "G":
        lr, interval, on = train.g_lr, train.g_reg_interval, train.pl_weight > 0
    else:
        lr, interval, on = train.d_lr, train.d_reg_interval, train.r1_gamma > 0
    return lazy_adam_settings(lr, train.betas, interval, train.adam_eps, lazy=train.lazy_scaling == "always" or on)


class Run:
    """One training session: config, plugins, data, networks, optimizers and counters.

    Build it with :meth:`build` (or :func:`gancore.train`), continue one with :meth:`resume`,
    train it with :meth:`train`. Its training step and phases are :attr:`trainer`'s
    (:class:`~gancore.trainer.Trainer`). ``out_dir`` None keeps everything in memory (no stats
    file, samples or checkpoints).
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
        from gancore.stats import StatsLog

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
        self.step = 0
        #: Real images shown to D so far, over all processes.
        self.nimg = 0
        self.rng = torch.Generator().manual_seed(config.train.seed)
        #: Per-sample noise drawn on the device (path length): see :meth:`randn`.
        self.noise_rng = torch.Generator(device).manual_seed(mix_seed(config.train.seed, _NOISE_SEED_TAG))
        #: The generators of :meth:`rng_for`, by name.
        self.plugin_rngs: dict[str, torch.Generator] = {}
        self.pl_mean = torch.zeros((), device=device)
        self.G: nn.Module
        self.D: nn.Module
        self.G_ema: nn.Module
        #: The networks the main phases run (``torch.compile`` wrappers with ``train.compile``).
        self.G_main: nn.Module
        self.D_main: nn.Module
        self.opt_G: torch.optim.Optimizer | None = None
        self.opt_D: torch.optim.Optimizer | None = None
        #: The training step and its phases.
        self.trainer = Trainer(self)
        #: The run folder's lock while this process writes to it (see :mod:`gancore.runfolder`).
        self.lock: RunLock | None = None
        #: Whether training started the run folder from nothing (then a failure before the first
        #: logged step or checkpoint clears it again).
        self.fresh_folder = False
        self.last_stats: dict[str, float] = {}
        #: The newest evaluation (``Metrics/...``), empty until the first one.
        self.metrics: dict[str, float] = {}
        #: How the newest ``Metrics/fid`` etc. were measured (extractor, sample counts, reference set).
        self.metrics_protocol: dict[str, Any] = {}
        #: The lowest FID measured so far (its checkpoint is ``checkpoints/best``).
        self.best_fid: float | None = None
        #: The loaded feature extractor of :meth:`measure`, with its name.
        self.extractor: tuple[str, nn.Module] | None = None
        #: The data the metrics compare against (``train.metrics_split``), once built.
        self.reference: tuple[DataConfig, Dataset] | None = None
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
        source: str = "<config>",
        initialise: bool = True,
    ) -> "Run":
        """Build a run: plugins, data, networks, ``gancore_setup``, G_ema and optimizers.

        ``config`` is a :class:`RunConfig` or a raw run-file dict (``source`` names where it came
        from in config errors). Without ``dataset`` the data set named in the config is loaded,
        unless ``data_info`` is given and ``for_training`` is False (rebuilding a run to sample
        from it). ``train.init`` loads a model folder's weights (``initialise=False``, as on resume,
        skips it). Nothing is written until training starts.
        """
        manager = manager or PluginManager()
        if not isinstance(config, RunConfig):
            config = parse_run_config(
                config, manager.backbone_config_class, manager.config_class, source=source,
                plugin_name=manager.canonical_name,
            )
        torch.manual_seed(config.train.seed)
        try:
            device = init_from_environment(config.train.device) if for_training else None
            device = device or resolve_device(config.train.device)
        except RuntimeError as exc:
            raise ConfigError(source, [f"train.device: {exc}"]) from None
        if rank() != 0:
            out_dir = None  # rank 0 alone writes logs, samples and checkpoints
        if for_training:
            _check_batch_split(config, source)
        if dataset is None and (for_training or data_info is None):
            dataset = build_dataset(config.data)
        info = dataset.info if dataset is not None else data_info
        assert info is not None
        backbone = manager.backbone(config.backbone.name)
        try:
            backbone_config = backbone.resolve_config(config.backbone.config, info)
        except ValueError as exc:
            raise ConfigError(source, [f"backbone: {exc}"]) from None
        config = config.evolve(backbone=attrs.evolve(config.backbone, config=backbone_config))
        manager.load_run_plugins(config.plugins)
        manager.check_pending()
        manager.check_requirements(backbone)
        if config.train.pl_weight > 0 and "path_length" not in backbone.capabilities:
            raise ConfigError(
                source,
                [f"train.pl_weight: backbone {backbone.name!r} has no path_length capability; set it to 0"],
            )
        run = cls(config, manager, backbone, info, dataset, device, Path(out_dir) if out_dir else None)
        run.for_training = for_training
        if for_training and config.train.metrics_split is not None and (config.train.metrics or config.train.eval_every):
            try:  # a split the data set lacks stops the run now, not at its first evaluation
                evaluation.reference_data(run)
            except DataError as exc:
                raise ConfigError(source, [f"train.metrics_split: {exc}"]) from None
        run.G = backbone.generator_class(backbone_config).to(device)
        run.D = backbone.discriminator_class(backbone_config).to(device)
        run.hooks.setup(run)
        run.G.to(device)
        run.D.to(device)
        run.G_ema = copy.deepcopy(run.G).eval().requires_grad_(False)
        train = config.train
        if for_training and train.init is not None and initialise:
            from gancore.model_folder import initialise_from

            initialise_from(run, train.init)
        run.G_main, run.D_main = run.G, run.D
        if train.compile and for_training:
            # Only the main phases: compiled graphs cannot be differentiated twice (R1, path length).
            run.G_main = torch.compile(run.G, backend=train.compile_backend)
            run.D_main = torch.compile(run.D, backend=train.compile_backend)
        run.opt_G = torch.optim.Adam(run.G.parameters(), **optimizer_settings(train, "G"))
        run.opt_D = torch.optim.Adam(run.D.parameters(), **optimizer_settings(train, "D"))
        run.hooks.check_state_round_trip(run)  # when the run is whole: a state may read G_ema or the optimizers
        return run

    @classmethod
    def resume(
        cls,
        path: str | Path,
        steps: int | None = None,
        *,
        manager: PluginManager | None = None,
        overrides: Sequence[str] = (),
        from_previous: bool = False,
        fork: str | Path | None = None,
        discard_later: bool = False,
        confirm: Callable[[str], bool] | None = None,
    ) -> "Run":
        """Rebuild a run from its newest checkpoint (or a given checkpoint folder).

        ``steps`` extends the run's total length (it may not be below the checkpoint's step);
        ``overrides`` are ``--set`` style ``key=value`` changes to its config. They take effect:
        learning rates and betas reach the optimizers, and a setting that cannot change on resume
        (the networks' shape, the data set, the plugins, the seed) is a ConfigError naming it.
        What changed is printed, logged as an ``"event": "config"`` line of stats.jsonl and kept
        in the run folder's ``config-history.jsonl``. With ``from_previous`` the run goes on from
        the newest intact checkpoint before its newest one (a damaged or diverged newest
        checkpoint). A damaged checkpoint is an error naming the file and the newest intact one.

        A run folder holds one timeline: going on from a checkpoint that has later ones is a
        :class:`~gancore.checkpoint.TimelineError`, unless ``fork`` names a new run folder to go on
        in (the source is only read) or ``discard_later`` deletes the later checkpoints, stats,
        samples and evaluations (after ``confirm(question)`` says yes, when given).
        """
        from gancore import resuming

        if fork is not None and discard_later:
            raise ckpt.TimelineError("give --fork or --discard-later, not both")
        run_dir = ckpt.find_checkpoint(path).parent.parent
        manager = manager or PluginManager()
        # Rank 0 alone forks, discards and writes. Under torchrun the process group starts only in
        # build(), so until then the environment says which rank this is.
        writer = rank() == 0 and os.environ.get("RANK", "0") == "0"
        fork_dir = Path(os.path.abspath(fork)) if fork is not None else None
        if fork_dir is not None and writer:
            resuming.check_fork_target(fork_dir, run_dir)
        # The lock first: a process training there would change what the newest checkpoint is.
        lock = RunLock(run_dir).acquire() if writer and fork is None else None
        checkpoint = run_dir
        try:
            checkpoint = ckpt.find_checkpoint(path)
            if from_previous:
                previous = ckpt.newest_intact_checkpoint(run_dir, before=checkpoint)
                if previous is None:
                    raise ckpt.TimelineError(f"{run_dir}: no intact checkpoint before {checkpoint.name}")
                checkpoint = previous
            state = ckpt.read_state(checkpoint)
            later = ckpt.later_checkpoints(checkpoint, state["step"])
            if later and fork is None and not discard_later:
                raise ckpt.TimelineError(resuming.timeline_problem(run_dir, checkpoint, state["step"], later))
            before = _checked_state_config(state, checkpoint, manager)
            raw = copy.deepcopy(before)
            if steps is not None:
                raw["train"] = {**raw.get("train", {}), "steps": steps}
            where = f"{checkpoint / 'state.json'} (--set)" if overrides else "--steps"
            if overrides:
                raw = apply_overrides(raw, overrides, source=where)
            total = raw.get("train", {}).get("steps")
            if isinstance(total, int) and total < state["step"]:
                raise ConfigError(where, [
                    f"train.steps: the run is at step {state['step']} already; give at least that many, got {total}"
                ])
            changes = resuming.changed_settings(before, raw)
            problems = resuming.fixed_on_resume(changes)
            if problems:
                raise ConfigError(where, problems)
            if discard_later and later and writer and confirm is not None:
                question = (f"delete {', '.join(f.name for f in later)} and everything {run_dir} logged "
                            f"after step {state['step']}?")
                if not confirm(question):
                    raise ckpt.TimelineError(f"{run_dir}: nothing was deleted, and the run was not resumed")
            # Built and loaded before anything is written: a bad --set or a damaged file forks nothing.
            source = where if overrides else str(checkpoint / "state.json")
            run = cls.build(raw, out_dir=fork_dir or run_dir, manager=manager, source=source, initialise=False)
            run.lock = lock
            plugin_changes = [key for key in changes if key.startswith("plugins.")]
            try:
                run.load_checkpoint(checkpoint, state)
            except ckpt.CheckpointError as exc:
                if not plugin_changes or "does not match the network" not in str(exc):
                    raise
                raise ConfigError(where, [
                    f"{key}: cannot change on resume: the checkpoint's networks were built without it ({exc})"
                    for key in plugin_changes
                ]) from None
            if fork_dir is not None and writer:
                checkpoint = resuming.fork_run(checkpoint, fork_dir, state["step"])
                lock = run.lock = RunLock(fork_dir).acquire()
            if writer:
                discarded = resuming.discard_later(checkpoint, run.step) if discard_later else []
                run._record_resume(checkpoint, changes, discarded)
        except ckpt.CheckpointError as exc:
            if lock is not None:
                lock.release()
            if isinstance(exc, ckpt.TimelineError):
                raise
            intact = ckpt.newest_intact_checkpoint(run_dir, before=checkpoint)
            hint = (f"; the newest intact checkpoint before it is {intact.name}: go on from it with "
                    f"`gancore resume {shlex.quote(str(run_dir))} --from-previous --discard-later` (or "
                    f"--fork NEW_DIR instead of --discard-later, to keep this one)") if intact is not None else "; no intact checkpoint precedes it"
            raise ckpt.CheckpointError(f"{exc}{hint}") from None
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        return run

    def _record_resume(self, checkpoint: Path, changes: Mapping[str, tuple[Any, Any]], discarded: list[str]) -> None:
        """Say and log what a resume changed and deleted (stats.jsonl, config-history.jsonl)."""
        from gancore import resuming

        if self.out_dir is None:
            return
        if discarded:
            print(f"gancore: deleted what {self.out_dir} wrote after step {self.step}: {', '.join(discarded)}",
                  file=sys.stderr)
            resuming.record_history(self.out_dir, self.step, "discard", {"from": checkpoint.name, "deleted": discarded})
        if not changes:
            return
        changed = {key: {"from": old, "to": new} for key, (old, new) in changes.items()}
        resuming.record_history(self.out_dir, self.step, "resume", {"from": checkpoint.name, "changed": changed})
        # A longer run (--steps) is said by "resuming at step N of M"; the rest is news in the stats.
        settings = {key: value for key, value in changed.items() if key != "train.steps"}
        if settings:
            said = ", ".join(f"{key} {value['from']!r} -> {value['to']!r}" for key, value in settings.items())
            print(f"gancore: going on from step {self.step} with {said}", file=sys.stderr)
            self.log.event(self.step, self.kimg, "config", {"changed": settings})

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
        run = cls.build(state["config"], manager=manager, data_info=info, for_training=False,
                        source=str(checkpoint / "state.json"))
        for component in components:
            if component not in ("G", "D", "G_ema"):
                raise ValueError(f"unknown component {component!r}; expected G, D or G_ema")
            ckpt.load_module(getattr(run, component), checkpoint / f"{component}.safetensors")
        run.step, run.nimg = state["step"], state["nimg"]
        return run

    # -- counters and sizes -------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        """The data epoch of the current step (0-based)."""
        batches = self.step * self.config.train.d_steps  # each D step reads a batch of its own
        return epoch_of(len(self.dataset), self.config.train.batch, batches) if self.dataset else 0

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

    # -- the networks' inputs and passes ------------------------------------------------------

    def randn(self, batch_size: int, *shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
        """Normal noise ``[batch_size, *shape]``, drawn on the run's device from :attr:`noise_rng`.

        Under data parallelism the global batch's noise is drawn and this rank's rows kept, so the
        noise does not depend on the number of processes (and differs between ranks). The
        generator's state is part of every checkpoint.
        """
        return self._per_sample(torch.randn, batch_size, shape, dtype)

    def rng_for(self, name: str, shared: bool = False) -> torch.Generator:
        """A generator of ``name``'s own (a plugin's name) on the run's device, for draws that are
        not per sample of the batch (a side network's noise, a random choice per step).

        It is seeded anew at the start of every step from the run's seed, ``name``, the step and
        (unless ``shared``) this process's rank: draws differ between plugins and between ranks,
        a run repeats them exactly, and a resume goes on exactly without storing the generator.
        A choice every rank must make alike (one that decides which parameters get gradients, so
        that the ranks average the same ones) takes ``shared=True``: the same stream on every rank.
        (Per-sample draws belong in :meth:`randn` / :meth:`rand`, the same on any number of processes.)
        """
        key = f"{name}#shared" if shared else name
        if key not in self.plugin_rngs or self.plugin_rngs[key].device != self.device:
            self.plugin_rngs[key] = torch.Generator(self.device)
            self.seed_plugin_rng(key)
        return self.plugin_rngs[key]

    def seed_plugin_rng(self, key: str) -> None:
        """Seed :meth:`rng_for`'s generator ``key`` (a name, ``#shared`` after it for a shared one)
        for the current step, where its step starts."""
        name, _, shared = key.partition("#")
        tag = zlib.crc32(name.encode("utf-8"))  # not hash(): that differs between processes
        where = 0 if shared else rank() + 1
        self.plugin_rngs[key].manual_seed(mix_seed(self.config.train.seed, _PLUGIN_STREAM_TAG, tag, where, self.step))

    def seed_step_streams(self) -> None:
        """Seed the streams that belong to a step and a rank: every :meth:`rng_for` generator and,
        under data parallelism, torch's own generator (the networks' noise inputs, StyleGAN2's
        mixing), from the run's seed, the rank and the step. Called at the start of every step."""
        for name in self.plugin_rngs:
            self.seed_plugin_rng(name)
        if is_distributed():
            torch.manual_seed(mix_seed(self.config.train.seed, _RANK_STREAM_TAG, rank(), self.step))

    def rand(self, batch_size: int, *shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
        """Uniform noise in [0, 1) ``[batch_size, *shape]``, drawn like :meth:`randn`."""
        return self._per_sample(torch.rand, batch_size, shape, dtype)

    def _per_sample(self, draw: Any, batch_size: int, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        if self.noise_rng.device != self.device:  # the run moved (Run.to): a generator for the new device
            self.noise_rng = torch.Generator(self.device).manual_seed(mix_seed(self.config.train.seed, _NOISE_SEED_TAG))
        size = batch_size * world_size()
        noise = draw(size, *shape, generator=self.noise_rng, device=self.device, dtype=dtype)
        return noise[rank_slice(size)] if is_distributed() else noise

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

    def autocast(self) -> contextlib.AbstractContextManager:
        """The mixed-precision context of the main phases (bf16 autocast with ``train.precision = "bf16"``)."""
        if self.config.train.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def discriminate(
        self, images: Tensor, c: Tensor | None = None, *, features: bool = False, double_backward: bool = False
    ) -> Tensor | tuple[Tensor, dict[int, Tensor]]:
        """D's logits ``[N]`` (float32) for ``images``, exactly as the core's own passes run D.

        That is the main phases' D (compiled with ``train.compile``) under the run's autocast.
        With ``double_backward`` (a penalty on D's input gradient, such as R1, differentiates the
        result twice) it is the eager D in full precision, as in the Dreg phase. With
        ``features`` the result is ``(logits, {resolution: block_output})``, attached to the
        graph. Whether D's weights get gradients is up to the phase (D is frozen in Gmain).
        """
        net, context = (self.D, contextlib.nullcontext()) if double_backward else (self.D_main, self.autocast())
        with context:
            if features:
                logits, block_outputs = net(images, c, features=True)
                return logits.float(), block_outputs
            return net(images, c).float()

    # -- training and evaluation (implemented in gancore.loop and gancore.evaluation) -------------

    train = loop.train
    evaluate = evaluation.evaluate
    measure = evaluation.measure

    def to(self, device: torch.device | str) -> "Run":
        """Move G, D and G_ema (and where plugins draw G's inputs) to ``device``; returns the run."""
        self.device = torch.device(device)
        for net in (self.G, self.D, self.G_ema):
            net.to(self.device)
        return self

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
        train = self.config.train
        return draw_samples(
            getattr(self, network), n, seed, c, cond, lambda size, rng: self.hooks.generator_inputs(self, size, rng),
            batch_norm=train.sample_bn, standing_passes=train.standing_passes,
        )

    def save_sample_grid(self, path: Path, n: int | None = None, seed: int | None = None) -> Path:
        """Save a grid (or, for 2-D data, a scatter plot with real points) from the fixed latents of
        ``seed`` (default: the run's own grid seed): ``n`` (default ``train.grid``) samples, for a
        class-conditional G one row per class."""
        seed = self.config.train.seed + _GRID_SEED_OFFSET if seed is None else seed
        c_dim = self.data_info.c_dim
        if self.data_info.is_image and c_dim > 0:  # one row per class
            from gancore.metrics.conditional import class_labels, grid_classes

            classes, per_class = grid_classes(c_dim, n or self.config.train.grid)
            labels = class_labels(c_dim, per_class, classes)
            return save_samples(path, self.sample(len(labels), seed=seed, c=labels), columns=per_class)
        if self.data_info.is_image:
            return save_samples(path, self.sample(n or self.config.train.grid, seed=seed))
        count = n or 2000
        real = None
        if self.dataset is not None:
            real = self.dataset.get(torch.arange(min(count, len(self.dataset))))[0]
        return save_samples(path, self.sample(count, seed=seed), real)

    # -- config and checkpoints ---------------------------------------------------------------

    def resolved_config(self) -> dict[str, Any]:
        """The fully resolved config in run-file shape, with versions under ``gancore``."""
        from gancore.version import __version__

        owner = self.manager.backbone_owner(self.backbone.name)
        raw = self.config.to_dict()
        raw[META_KEY] = {
            "version": __version__,
            "backbone_plugin": owner,
            "plugins": self.manager.versions([*self.config.plugin_names, owner or ""]),
            "data_info": data_info_dict(self.data_info),
        }
        return raw

    def save_checkpoint(self, name: str | None = None) -> Path:
        """Write a checkpoint of the current step into ``out_dir/checkpoints`` atomically
        (``step-NNNNNN``, or ``name`` such as ``best``)."""
        if self.out_dir is None:
            raise RuntimeError("this run has no output folder; build it with out_dir to save checkpoints")
        assert self.opt_G is not None and self.opt_D is not None
        extra = {
            "rng.run": self.rng.get_state(),
            "rng.torch": torch.get_rng_state(),
            f"rng.noise.{self.noise_rng.device.type}": self.noise_rng.get_state(),
            "pl_mean": self.pl_mean,
        }
        if self.device.type == "cuda":
            extra["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        state = {
            "step": self.step,
            "nimg": self.nimg,
            "config": self.resolved_config(),
            "data_info": data_info_dict(self.data_info),
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
        train = self.config.train
        for name, optimizer in (("G", self.opt_G), ("D", self.opt_D)):
            meta = state["optimizers"].get(name)
            problem = ckpt.optimizer_meta_problem(optimizer, meta)
            if problem:
                raise ckpt.CheckpointError(f"{checkpoint / 'state.json'}: optimizers.{name}: {problem}")
            ckpt.load_optimizer(optimizer, checkpoint / f"optim-{name}.safetensors", meta)
            # The config's settings, not the saved ones: a resume with --set train.g_lr=... means it.
            for group in optimizer.param_groups:
                group.update(optimizer_settings(train, name))
        extra = ckpt.read_tensors(checkpoint / "run.safetensors")
        self.rng.set_state(extra["rng.run"])
        torch.set_rng_state(extra["rng.torch"])
        if self.device.type == "cuda" and "rng.cuda" in extra:
            torch.cuda.set_rng_state(extra["rng.cuda"], self.device)
        noise_key = f"rng.noise.{self.noise_rng.device.type}"
        if noise_key in extra:  # absent in checkpoints from another device type: the noise stream restarts
            self.noise_rng.set_state(extra[noise_key])
        self.pl_mean = extra["pl_mean"].to(self.device)
        self.step, self.nimg = int(state["step"]), int(state["nimg"])
        self.metrics = dict(state.get("metrics") or {})
        self.metrics_protocol = dict(state.get("metrics_protocol") or {})
        self.best_fid = state.get("best_fid")
        self.hooks.load_state_dict(self, state.get("plugins", {}))
        if self.out_dir is not None:
            # Lines logged after this checkpoint (by a run that then stopped) are logged again.
            self.log.truncate_after(self.step)


def _checked_state_config(state: Mapping[str, Any], checkpoint: Path, manager: PluginManager) -> dict[str, Any]:
    """The run config a checkpoint's state.json holds, checked: a bad entry is state.json's fault (a
    CheckpointError naming it), not the user's."""
    raw = dict(state["config"])

    class NotInstalled(Exception):
        pass

    def installed(lookup: Callable[[str], Any]) -> Callable[[str], Any]:
        def find(name: str) -> Any:
            try:
                return lookup(name)
            except LookupError as exc:
                raise NotInstalled() from exc
        return find

    try:
        parse_run_config(raw, installed(manager.backbone_config_class), installed(manager.config_class),
                         source=str(checkpoint / "state.json"), plugin_name=manager.canonical_name)
    except NotInstalled:
        pass  # a plugin or backbone missing here is not damage: building the run says what to install
    except ConfigError as exc:
        raise ckpt.CheckpointError(f"{checkpoint / 'state.json'}: config: {'; '.join(exc.problems)}") from None
    return raw


def _check_batch_split(config: RunConfig, source: str) -> None:
    """The global batch must split evenly over the processes, and each process's over its micro-batches."""
    train = config.train
    if train.batch % world_size():
        raise ConfigError(source, [
            f"train.batch: {train.batch} is the global batch and must be divisible by the "
            f"number of processes ({world_size()})"
        ])
    per_process = train.batch // world_size()
    if train.batch_per_gpu and per_process % train.batch_per_gpu:
        raise ConfigError(source, [
            f"train.batch_per_gpu: {train.batch_per_gpu} must divide the batch of each process "
            f"({train.batch} / {world_size()} = {per_process}); the rest is gradient accumulation"
        ])


def data_info_dict(info: DataInfo) -> dict[str, Any]:
    """``DataInfo`` as the JSON of config.json and state.json."""
    return {"name": info.name, "shape": list(info.shape), "c_dim": info.c_dim}
