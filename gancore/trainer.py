"""The training step: phases Gmain, Greg, Dmain and Dreg (NVIDIA's order), gradient accumulation, the EMA of G and the image count."""

import contextlib
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import attrs
import torch
from torch import Tensor, nn
from torch.autograd.profiler import record_function

from gancore.data import batch_indices
from gancore.data.loader import BatchStream, as_images, default_workers
from gancore.dead_discriminator import SCORE_SPREAD
from gancore.distributed import all_reduce_mean, average_gradients, mean_over_ranks, rank_slice, world_size
from gancore.hooks import NamedTerm
from gancore.losses import d_adversarial_loss, g_adversarial_loss, path_length_penalty, r1_penalty

if TYPE_CHECKING:  # pragma: no cover
    from gancore.run import Run

__all__ = ["Trainer"]


@contextlib.contextmanager
def requires_grad(module: nn.Module, flag: bool) -> Iterator[None]:
    """Set ``requires_grad`` of every parameter of ``module`` for a block, then restore it."""
    previous = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(flag)
    try:
        yield
    finally:
        for p, was in zip(module.parameters(), previous):
            p.requires_grad_(was)


@contextlib.contextmanager
def buffers_restored(*modules: nn.Module) -> Iterator[None]:
    """Put the modules' buffers (BatchNorm statistics, StyleGAN2's w_avg) back as they were after the block."""
    saved = [(b, b.detach().clone()) for m in modules for b in m.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


@attrs.frozen
class _RandomState:
    """Where every random stream a G forward and its augmentation may draw from stands."""

    torch_cpu: Tensor
    torch_cuda: Tensor | None
    run_rng: Tensor
    noise_rng: Tensor
    plugin_rngs: dict[str, Tensor]

    @classmethod
    def capture(cls, run: "Run") -> "_RandomState":
        """The current state of torch's generators, ``run.rng``, the run's noise generator and the
        plugins' generators (:meth:`~gancore.run.Run.rng_for`)."""
        cuda = torch.cuda.get_rng_state(run.device) if run.device.type == "cuda" else None
        plugins = {name: generator.get_state() for name, generator in run.plugin_rngs.items()}
        return cls(torch.get_rng_state(), cuda, run.rng.get_state(), run.noise_rng.get_state(), plugins)

    def restore(self, run: "Run") -> None:
        """Put every stream back where it stood."""
        torch.set_rng_state(self.torch_cpu)
        if self.torch_cuda is not None:
            torch.cuda.set_rng_state(self.torch_cuda, run.device)
        run.rng.set_state(self.run_rng)
        run.noise_rng.set_state(self.noise_rng)
        for name in run.plugin_rngs:
            if name in self.plugin_rngs:
                run.plugin_rngs[name].set_state(self.plugin_rngs[name])
            else:  # made since the capture: it stood at its step's start
                run.seed_plugin_rng(name)


def graph_anchor(output: Tensor) -> Tensor:
    """A zero that keeps ``output`` in the graph: ``output.sum() * 0``.

    NVIDIA's loss adds it to the lazy regularisers (``real_logits * 0`` in Dreg,
    ``gen_img[:, 0, 0, 0] * 0`` in Greg) so that every parameter the network's output depends on
    takes part in the backward pass. Parameters the penalty alone does not reach (D's last bias
    under R1) then get a zero gradient rather than none: Adam still steps them, decaying their
    moments as in NVIDIA's loop, and every rank averages the same set of gradients.
    """
    return output.sum() * 0


@attrs.define
class _Scored:
    """Per-sample weights decided over the whole batch before the micro-batches of Gmain run."""

    #: Each micro-batch's weights ``[n]`` (None where every plugin abstained).
    weights: list[Tensor | None]
    #: The mean over processes of each process's weight sum: the weighted mean's denominator.
    weight_mean: Tensor | None
    #: The generator inputs and the random state of each micro-batch's G forward, to replay it.
    inputs: list[dict[str, Any]]
    rng_states: list[_RandomState]


class Trainer:
    """Runs the training steps of a run: its phases, the hooks they call, optimizer steps, EMA.

    Each phase is a method, so a test can run one and look at the gradients it left:
    :meth:`d_main` and :meth:`d_reg` take a real batch, :meth:`g_main` and :meth:`g_reg` a batch
    size. :meth:`step` runs one whole iteration.
    """

    def __init__(self, run: "Run"):
        self.run = run
        #: (round, rounds) of gradient accumulation within the current phase.
        self.accumulation = (0, 1)
        #: The real batches decoded ahead by worker processes (``train.data_workers``), once asked for.
        self._stream: BatchStream | None = None
        #: The phase running (``"Gmain"``, ``"Greg"``, ``"Dmain"``, ``"Dreg"``, ``"Gema"``), for error messages.
        self.phase: str | None = None

    # -- one iteration ------------------------------------------------------------------------

    def real_batch(self, number: int | None = None) -> tuple[Tensor, Tensor | None]:
        """This process's slice of real batch ``number``, and its labels. Each D step reads a batch
        of its own: the ``j``-th D step of training step ``s`` reads batch ``s * train.d_steps + j``
        (default: the current step's first).

        With ``train.data_workers`` (automatic for data sets that read files) the batches are
        decoded ahead in background processes; they hold the same items either way.
        """
        run = self.run
        number = run.step * run.config.train.d_steps if number is None else number
        assert run.dataset is not None, "this run was built without a data set"
        train = run.config.train
        batch = train.batch
        workers = train.data_workers if train.data_workers is not None else default_workers(run.dataset)
        if workers > 0:
            if self._stream is None:
                self._stream = BatchStream(run.dataset, batch, train.seed, rank_slice(batch), workers,
                                           pin_memory=run.device.type == "cuda")
            x, c = self._stream.get(number)
        else:
            indices = batch_indices(len(run.dataset), batch, number, train.seed)[rank_slice(batch)]
            x, c = run.dataset.get(indices)
        x = as_images(x.to(run.device, non_blocking=True))  # 8-bit batches become floats on the device
        return x, None if c is None else c.to(run.device, non_blocking=True)

    def close(self) -> None:
        """Stop the data workers, if any (they start again when a batch is asked for)."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def step(self) -> dict[str, float]:
        """Run one iteration (all phases, EMA, hooks) and return its statistics."""
        run = self.run
        train = run.config.train
        run.G.train()
        run.D.train()
        run.seed_step_streams()
        run.hooks.step_start(run)
        stats: dict[str, float] = {}
        first = run.step * train.d_steps
        real, c_real = self.real_batch(first)
        reals, labels = self._micro_batches(real, c_real)
        sizes = [r.shape[0] for r in reals]

        # NVIDIA's order (training_loop.py): G's phases against the D of the last step, then D's.
        self.phase = "Gmain"
        scored = self._score_batch(sizes, labels) if len(sizes) > 1 and run.hooks.implemented("gancore_sample_weights") else None
        self._accumulate(stats, "Gmain", self.g_main, [
            dict(batch=n, c_real=c, scored=scored, index=i) for i, (n, c) in enumerate(zip(sizes, labels))
        ])
        if train.pl_weight > 0 and run.step % train.g_reg_interval == 0:
            self._accumulate(stats, "Greg", self.g_reg, [dict(batch=n, c_real=c) for n, c in zip(sizes, labels)])
        d_stats: list[dict[str, float]] = []
        for number in range(first, first + train.d_steps):  # each D step on a real batch of its own
            if number > first:
                reals, labels = self._micro_batches(*self.real_batch(number))
            d_stats.append({})
            self._accumulate(d_stats[-1], "Dmain", self.d_main, [dict(real=r, c_real=c) for r, c in zip(reals, labels)])
            if train.r1_gamma > 0 and number % train.d_reg_interval == 0:
                self._accumulate(d_stats[-1], "Dreg", self.d_reg, [dict(real=r, c_real=c) for r, c in zip(reals, labels)])
        for key in dict.fromkeys(k for part in d_stats for k in part):  # means over the D steps that report them
            values = [part[key] for part in d_stats if key in part]
            stats[key] = sum(values) / len(values)
        global_batch = real.shape[0] * world_size()
        self.phase = "Gema"
        with record_function("Gema"):
            self.update_ema(global_batch)
        run.nimg += global_batch * train.d_steps
        run.hooks.step_end(run, stats)
        run.step += 1
        run.last_stats = stats
        return stats

    def _micro_batches(self, real: Tensor, c_real: Tensor | None) -> tuple[list[Tensor], list[Tensor | None]]:
        """A real batch and its labels cut into the micro-batches of gradient accumulation."""
        batch_per_gpu = self.run.config.train.batch_per_gpu
        rounds = real.shape[0] // batch_per_gpu if batch_per_gpu else 1
        return list(real.chunk(rounds)), list(c_real.chunk(rounds)) if c_real is not None else [None] * rounds

    def _accumulate(
        self, stats: dict[str, float], name: str, phase: Callable[..., dict[str, float]], rounds: Sequence[dict]
    ) -> None:
        """Run ``phase`` (called ``name`` in messages) once per micro-batch (gradients accumulate); stats
        are averaged over them."""
        parts = []
        self.phase = name
        for index, arguments in enumerate(rounds):
            self.accumulation = (index, len(rounds))
            parts.append(phase(**arguments))
        self.accumulation = (0, 1)
        stats.update({key: sum(p[key] for p in parts) / len(parts) for key in parts[0]})

    def optimize(self, optimizer: torch.optim.Optimizer | None, loss: Tensor) -> None:
        """Backward; with gradient accumulation, step after the last round (gradients averaged over ranks)."""
        assert optimizer is not None
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {float(loss.detach())} at step {self.run.step}")
        index, rounds = self.accumulation
        if index == 0:
            optimizer.zero_grad(set_to_none=True)
        if not loss.requires_grad:
            raise RuntimeError(
                f"step {self.run.step}: the loss does not depend on any parameter that requires a gradient "
                "(a plugin froze the network, an augmentation detached the batch, or the step runs under "
                "torch.no_grad)"
            )
        (loss / rounds if rounds > 1 else loss).backward()
        if index == rounds - 1:
            average_gradients(p for group in optimizer.param_groups for p in group["params"])
            optimizer.step()

    @torch.no_grad()
    def update_ema(self, batch: int) -> None:
        """G_ema <- lerp(G, G_ema, beta); ``batch`` is the global batch.

        ``beta`` is NVIDIA's half-life of ``train.ema_kimg`` thousand images (ramped up), or
        BigGAN's ``train.ema_decay`` per step; until G step ``train.ema_start`` (counted from 1, as
        BigGAN does) G_ema copies G.
        Buffers are copied from G, or averaged like the weights (``train.ema_buffers``).
        """
        run = self.run
        train = run.config.train
        if run.step + 1 < train.ema_start:  # BigGAN counts G steps from 1
            beta = 0.0
        elif train.ema_decay is not None:
            beta = train.ema_decay
        else:
            ema_nimg = train.ema_kimg * 1000
            if train.ema_rampup is not None:  # in the images G has made: nimg counts every D step's
                ema_nimg = min(ema_nimg, run.nimg / train.d_steps * train.ema_rampup)
            beta = 0.5 ** (batch / max(ema_nimg, 1e-8))
        for p_ema, p in zip(run.G_ema.parameters(), run.G.parameters()):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(run.G_ema.buffers(), run.G.buffers()):
            if train.ema_buffers == "average" and b.is_floating_point():
                b_ema.copy_(b.lerp(b_ema, beta))
            else:
                b_ema.copy_(b)

    def fake_labels(self, c_real: Tensor | None) -> Tensor | None:
        """The labels to give the fakes: the real batch's (``train.fake_labels = "real"``), or None,
        so that :meth:`~gancore.run.Run.generator_inputs` draws them uniformly (``"uniform"``)."""
        return c_real if self.run.config.train.fake_labels == "real" else None

    # -- what D scores ------------------------------------------------------------------------

    def _scores(
        self, images: Tensor, c: Tensor | None, phase: str, source: str, hook: str, argument: str
    ) -> tuple[Tensor, Tensor, dict[int, Tensor] | None]:
        """Apply ``gancore_augment`` and let D score the result: ``(seen, logits, features)``.

        D's block outputs are computed only when an implementation of ``hook`` names ``argument``.
        """
        run = self.run
        seen = run.hooks.augment(run, images, c, phase, source)
        double_backward = phase == "Dreg"
        if run.hooks.wants(hook, argument):
            logits, features = run.discriminate(seen, c, features=True, double_backward=double_backward)
            return seen, logits, features
        return seen, run.discriminate(seen, c, double_backward=double_backward), None

    # -- the phases ---------------------------------------------------------------------------

    def d_main(self, real: Tensor, c_real: Tensor | None = None) -> dict[str, float]:
        """Dmain: one step of D's optimizer on its adversarial loss and the plugins' D terms.

        G is frozen (no gradients to its weights, which it still passes through). Returns the
        phase's statistics.
        """
        run = self.run
        stats: dict[str, float] = {}
        with record_function("Dmain"), requires_grad(run.G, False):
            inputs = run.generator_inputs(real.shape[0], self.fake_labels(c_real))
            g_features = None
            with torch.no_grad(), run.autocast():
                if run.hooks.wants("gancore_d_loss", "g_features"):
                    fake, g_features = run.G_main(inputs["z"], inputs["c"], inputs["cond"], features=True)
                    g_features = {res: f.float() for res, f in g_features.items()}
                else:
                    fake = run.G_main(inputs["z"], inputs["c"], inputs["cond"])
                fake = fake.float()
            real, fake = run.hooks.before_d_step(run, real, fake)
            hook = "gancore_d_loss"
            seen_real, d_real, d_real_features = self._scores(real, c_real, "Dmain", "real", hook, "d_real_features")
            seen_fake, d_fake, d_fake_features = self._scores(fake, inputs["c"], "Dmain", "fake", hook, "d_fake_features")
            loss_real, loss_fake = d_adversarial_loss(d_real, d_fake, run.config.train.loss)
            terms = run.hooks.d_loss(
                run, real=seen_real, fake=seen_fake, d_real=d_real, d_fake=d_fake,
                d_real_features=d_real_features, d_fake_features=d_fake_features, g_features=g_features,
                c_real=c_real, c_fake=inputs["c"], real_unaugmented=real, fake_unaugmented=fake,
            )
            loss = loss_real.mean() + loss_fake.mean() + _sum_terms(terms, d_real)
            self.optimize(run.opt_D, loss)
            stats.update({
                "Loss/D/real": float(loss_real.detach().mean()),
                "Loss/D/fake": float(loss_fake.detach().mean()),
                "Loss/scores/real": float(d_real.detach().mean()),
                "Loss/scores/fake": float(d_fake.detach().mean()),
                SCORE_SPREAD: float(torch.cat([d_real.detach().flatten(), d_fake.detach().flatten()]).std()),
            })
            _report_terms(stats, "Loss/D", terms)
            stats["Loss/D/total"] = float(loss.detach())
        return stats

    def d_reg(self, real: Tensor, c_real: Tensor | None = None) -> dict[str, float]:
        """Dreg: one step of D's optimizer on lazy R1 (times the interval) and the plugins' Dreg terms.

        R1 is the gradient of D's score with respect to the images before ``gancore_augment``.
        """
        run = self.run
        train = run.config.train
        stats: dict[str, float] = {}
        with record_function("Dreg"), requires_grad(run.G, False):
            real_reg = real.detach().requires_grad_(True)
            seen, d_real, d_real_features = self._scores(
                real_reg, c_real, "Dreg", "real", "gancore_d_reg_loss", "d_real_features"
            )
            r1 = r1_penalty(d_real, real_reg)
            terms = run.hooks.d_reg_loss(
                run, real=seen, d_real=d_real, d_real_features=d_real_features, c_real=c_real,
                real_unaugmented=real_reg,
            )
            loss = (r1.mean() * (train.r1_gamma / 2) + graph_anchor(d_real)) * train.d_reg_interval
            loss = loss + _sum_terms(terms, d_real)
            self.optimize(run.opt_D, loss)
            stats["Loss/Dreg/r1"] = float(r1.detach().mean())
            _report_terms(stats, "Loss/Dreg", terms)
        return stats

    def g_main(
        self, batch: int, c_real: Tensor | None = None, scored: _Scored | None = None, index: int = 0
    ) -> dict[str, float]:
        """Gmain: one step of G's optimizer on its (weighted) adversarial loss, plugin and teacher terms.

        D is frozen. ``c_real`` supplies the labels of conditional runs. ``scored`` holds weights
        decided over the whole batch under gradient accumulation (``index`` is the micro-batch);
        without it the weights come from this batch alone.
        """
        run = self.run
        stats: dict[str, float] = {}
        with record_function("Gmain"), requires_grad(run.D, False):
            if scored is not None:
                inputs = scored.inputs[index]
                stream = _RandomState.capture(run)
                scored.rng_states[index].restore(run)  # the scored fakes again: same noise, mixing, augmentation
            else:
                inputs = run.generator_inputs(batch, self.fake_labels(c_real))
            with run.autocast():
                fake = run.G_main(inputs["z"], inputs["c"], inputs["cond"]).float()
            hook = "gancore_g_loss"
            seen, d_fake, d_fake_features = self._scores(fake, inputs["c"], "Gmain", "fake", hook, "d_fake_features")
            if scored is not None:
                stream.restore(run)  # later draws continue the stream instead of repeating the next replay's
            per_sample = g_adversarial_loss(d_fake, run.config.train.loss)
            if scored is not None:
                weights, weight_mean = scored.weights[index], scored.weight_mean
            else:
                weights = run.hooks.sample_weights(run, fake=seen, d_fake=d_fake.detach(), fake_unaugmented=fake)
                weight_mean = None if weights is None else all_reduce_mean(weights.sum().to(per_sample.dtype))
            weight_sum = None
            if weights is None or weight_mean is None:
                adversarial = per_sample.mean()
            else:
                # The weighted mean over the global batch, sum(w * l) / sum(w): this micro-batch's
                # share, with the denominator scaled down by the rounds that optimize() divides by.
                weight_sum = weight_mean.clamp_min(torch.finfo(per_sample.dtype).tiny) / self.accumulation[1]
                adversarial = (weights.to(per_sample.dtype) * per_sample).sum() / weight_sum
            terms = run.hooks.g_loss(
                run, fake=seen, d_fake=d_fake, inputs=inputs, d_fake_features=d_fake_features,
                c_fake=inputs["c"], fake_unaugmented=fake,
            )
            terms += run.hooks.teacher_loss(
                run, fake=seen, inputs=inputs, weights=weights, weight_sum=weight_sum, fake_unaugmented=fake
            )
            terms += [(f"backbone_{term.name}", term) for term in run.G.loss_terms()]
            loss = adversarial + _sum_terms(terms, adversarial)
            self.optimize(run.opt_G, loss)
            stats["Loss/G/adversarial"] = float(adversarial.detach())
            stats["Output/G/mean_abs"] = float(fake.detach().abs().mean())
            if weights is not None:
                stats["Loss/G/weight_sum"] = float(weights.sum()) * self.accumulation[1]
            _report_terms(stats, "Loss/G", terms)
            stats["Loss/G/total"] = float(loss.detach())
        return stats

    def _score_batch(self, sizes: list[int], labels: list[Tensor | None]) -> _Scored:
        """Score every micro-batch's fakes without gradients and ask for weights over all of them.

        The random state before each micro-batch's G forward is kept, so that :meth:`g_main`
        generates the very same fakes again (same noise, style mixing and augmentation).
        Networks' buffers are restored, so the extra forwards leave no trace.
        """
        run = self.run
        inputs, states, seen_parts, score_parts, fake_parts = [], [], [], [], []
        with torch.no_grad(), buffers_restored(run.G, run.D):
            for n, c in zip(sizes, labels):
                inputs.append(run.generator_inputs(n, self.fake_labels(c)))
                states.append(_RandomState.capture(run))
                with run.autocast():
                    fake = run.G_main(inputs[-1]["z"], inputs[-1]["c"], inputs[-1]["cond"]).float()
                seen = run.hooks.augment(run, fake, inputs[-1]["c"], "Gmain", "fake")
                seen_parts.append(seen)
                fake_parts.append(fake)
                score_parts.append(run.discriminate(seen, inputs[-1]["c"]))
        d_fake = torch.cat(score_parts)
        weights = run.hooks.sample_weights(
            run, fake=torch.cat(seen_parts), d_fake=d_fake, fake_unaugmented=torch.cat(fake_parts)
        )
        if weights is None:
            return _Scored([None] * len(sizes), None, inputs, states)
        weight_mean = all_reduce_mean(weights.sum().to(d_fake.dtype))
        return _Scored(list(weights.split(sizes)), weight_mean, inputs, states)

    def g_reg(self, batch: int, c_real: Tensor | None = None) -> dict[str, float]:
        """Greg: one step of G's optimizer on the lazy path-length penalty (times the interval).

        As in NVIDIA's loss: the batch is ``batch // pl_batch_shrink`` with style mixing, and the
        penalty is taken against the running mean updated with this batch (not detached).
        """
        run = self.run
        train = run.config.train
        stats: dict[str, float] = {}
        with record_function("Greg"), requires_grad(run.D, False):
            pl_batch = max(batch // train.pl_batch_shrink, 1)
            c_fake = self.fake_labels(c_real)
            inputs = run.generator_inputs(pl_batch, None if c_fake is None else c_fake[:pl_batch])
            ws = run.G.mix_styles(run.G.mapping(inputs["z"], inputs["c"]), inputs["z"], inputs["c"])
            if not ws.requires_grad:
                ws.requires_grad_(True)
            images = run.G.synthesis(ws, cond=inputs["cond"])
            noise = run.randn(pl_batch, *images.shape[1:], dtype=images.dtype)
            penalty, lengths, run.pl_mean = path_length_penalty(
                images, ws, run.pl_mean, train.pl_decay, reduce=mean_over_ranks, noise=noise
            )
            loss = (penalty.mean() * train.pl_weight + graph_anchor(images)) * train.g_reg_interval
            self.optimize(run.opt_G, loss)
            stats["Loss/Greg/pl_penalty"] = float(penalty.detach().mean())
            stats["Loss/Greg/pl_length"] = float(lengths.detach().mean())
        return stats


def _sum_terms(terms: list[NamedTerm], like: Tensor) -> Tensor:
    total = like.new_zeros(())
    for _, term in terms:
        total = total + term.weighted.float()
    return total


def _report_terms(stats: dict[str, float], prefix: str, terms: list[NamedTerm]) -> None:
    for key, term in terms:
        stats[f"{prefix}/{key}"] = float(term.scalar.detach())
