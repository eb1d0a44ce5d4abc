"""Every hook gancore calls; each spec's docstring is its contract, including its combine rule."""

from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from gancore.backbone import BackboneSpec
    from gancore.import_types import ImportedModel, ImportedModules, PublishedCheckpoint
    from gancore.losses import LossTerm
    from gancore.metrics.extractors import FeatureExtractor
    from gancore.run import Run

hookspec = pluggy.HookspecMarker("gancore")
hookimpl = pluggy.HookimplMarker("gancore")

# Hooks are listed in the order a run meets them; docs/hooks.md follows this order.


@hookspec
def gancore_register_backbones(register: "Callable[[BackboneSpec], None]") -> None:
    """Register the backbones a plugin provides.

    Called once at start-up, when a plugin manager is created, on every installed plugin whose
    ``kind`` is ``"backbone"`` (backbone providers are always loaded, whether or not a run lists
    them, so that ``[backbone] name = ...`` can find them).

    :param register: call ``register(BackboneSpec(...))`` once per backbone.

    Combine rule: callback; every registration is collected. Two backbones with the same name
    are an error naming both plugins.

    Used by: gancore-dcgan, gancore-stylegan2.
    """


@hookspec
def gancore_register_ops(register: "Callable[..., None]") -> None:
    """Register implementations of the ops in ``gancore.ops``.

    Called once at start-up, when a plugin manager is created, on every installed plugin whose
    ``kind`` is ``"ops"``.

    :param register: call ``register(op, name, function, priority=0, available=None)``;
        ``op`` names the op (``"bias_act"``, ``"upfirdn2d"``, ...), ``name`` the implementation,
        ``available`` an optional zero-argument callable telling whether it can run here.

    Combine rule: callback; for ``impl="auto"`` the available implementation with the highest
    priority wins, the reference (priority 0) being the fallback. Two implementations with the
    same op and name are an error naming both plugins.

    Used by: gancore-cuda-ops.
    """


@hookspec
def gancore_register_feature_extractors(register: "Callable[[FeatureExtractor], None]") -> None:
    """Register feature extractors for FID, KID and precision/recall (``gancore eval``, ``train.metrics``).

    Called once at start-up, when a plugin manager is created, on every installed plugin whose
    ``kind`` is ``"backbone"``, ``"ops"`` or ``"metrics"``. gancore's own ``fmnist`` and
    ``inception`` are registered first.

    :param register: call ``register(FeatureExtractor(name=..., load=..., description=...))``;
        ``load(device)`` returns a module mapping images ``[N, C, H, W]`` in [-1, 1] to features
        ``[N, D]``.

    Combine rule: callback; a name registered twice is an error naming both plugins.

    Used by: plugins that bring a domain-specific feature network.
    """


@hookspec
def gancore_import_networks(checkpoint: "PublishedCheckpoint") -> "ImportedModel | None":
    """Map a published checkpoint's networks (NVIDIA's StyleGAN2 pickles, ...) onto a backbone.

    Called by ``gancore import`` (:func:`gancore.importing.import_checkpoint`) on every
    backbone plugin, in registration order, until one returns a result. The networks come as
    inert records (:class:`~gancore.pickle_reader.PickledModule`: class name, attributes,
    tensors; :class:`~gancore.pickle_reader.PickledTFNetwork` for TF-era files): read the
    settings from each module's own attributes and tensor shapes, never from defaults.

    :param checkpoint: the file as read (``networks``, ``extras``, ``source``, ``sha256``).
    :returns: an :class:`~gancore.importing.ImportedModel` (the ``[backbone]`` table, the data
        shape, ``G``/``D``/``G_ema`` state dicts in gancore's names and the checkpoint tensors
        used), or None when the networks are not this plugin's. Raise
        :class:`~gancore.importing.CheckpointImportError` naming the setting for networks that
        are yours but use something the backbone cannot reproduce.

    Combine rule: first result wins. Every tensor of the file must be claimed by the result,
    else the import fails naming the unclaimed tensors; nothing is written.

    Used by: gancore-stylegan2.
    """


@hookspec
def gancore_import_modules(checkpoint: "PublishedCheckpoint", model: "ImportedModel") -> "ImportedModules | None":
    """Claim a method's own modules in a published checkpoint (GLeaD's decoder, EqGAN-SA's encoders).

    Called by ``gancore import`` after a backbone plugin has mapped the networks
    (``gancore_import_networks``), on every installed method plugin that implements it, built with
    its default settings (the run does not list it: the file decides). Read the modules from
    ``checkpoint.networks`` (inert records) and the backbone's reading from ``model``.

    :param checkpoint: the file as read.
    :param model: the backbone's :class:`~gancore.importing.ImportedModel` (and earlier plugins').
    :returns: an :class:`~gancore.importing.ImportedModules` (the ``plugins`` entry with the
        settings read from the file, the tensors under their names in the gancore networks, the
        checkpoint tensors used), or None when the file holds none of this plugin's modules.

    Combine rule: every result is merged, in plugin name order; two plugins claiming one tensor
    is an error. The imported model folder lists the plugins, so loading it needs them installed.

    Used by: gancore-glead, gancore-eqgan-sa.
    """


@hookspec
def gancore_setup(run: "Run") -> None:
    """Prepare a plugin for a run: attach modules, load teachers, check the backbone.

    Called once per run after G and D are built and before the optimizers and G_ema exist, so
    modules attached here (``run.G.add_adapter``, ``run.G.add_cond_encoder``,
    ``run.D.attach``) are trained by the right optimizer, copied into G_ema and saved with
    their network. Also called when a run is rebuilt for resuming or sampling; then
    ``run.for_training`` is False when only the networks are needed (loading, sampling,
    ``from_pretrained``): build every module the networks hold, but skip what only training
    needs (DGL's teacher).

    :param run: the run being built; ``run.G``, ``run.D``, ``run.config``, ``run.device``,
        ``run.data_info`` and ``run.for_training`` are set, ``run.G_ema`` and the optimizers are
        not yet.

    Combine rule: all implementations are called, in plugin list order.

    Used by: GLeaD heads, EqGAN-SA encoders, DGL teacher.
    """


@hookspec
def gancore_step_start(run: "Run") -> None:
    """Update per-step plugin state before the networks are touched.

    Called at the start of every training iteration; ``run.step`` is the index of the step about
    to run (0 for the first) and ``run.epoch`` the data epoch it belongs to.

    :param run: the running training session.

    Combine rule: all implementations are called, in plugin list order.

    Used by: top-k schedule, DGL stage switch.
    """


@hookspec
def gancore_generator_inputs(run: "Run", batch_size: int, rng: "torch.Generator") -> "dict[str, Tensor] | None":
    """Provide extra inputs (``cond``) for a forward pass of G.

    Called before every G forward in training (Dmain, Gmain, Greg) and for sample grids (under
    gradient accumulation with a sample-weighting plugin, the Gmain micro-batch trained after the
    scoring pass reuses the inputs drawn for it).

    :param run: the running training session.
    :param batch_size: number of samples G is about to generate.
    :param rng: the CPU random generator to draw from; sample grids pass a freshly seeded one so
        the same grid shows the same inputs every time.
    :returns: a dict of tensors of leading size ``batch_size`` on ``run.device``, or None.

    Combine rule: the dicts of all plugins are merged into one ``cond`` dict; the same key from
    two plugins is an error naming both.

    Used by: EqGAN-SA heatmaps.
    """


@hookspec
def gancore_before_d_step(run: "Run", real: "Tensor", fake: "Tensor") -> "tuple[Tensor, Tensor] | None":
    """See, or replace, the batch of the discriminator's main step (a batch-level edit).

    Called in the Dmain phase, after the fakes are generated (detached) and before
    ``gancore_augment``: what this hook returns is the batch "before the transform" that the
    loss hooks receive as ``real_unaugmented`` / ``fake_unaugmented``. To change what D scores in
    every phase, implement ``gancore_augment`` instead.

    :param run: the running training session.
    :param real: the real batch.
    :param fake: the generated batch, detached from G.
    :returns: None to leave the batch as it is, or a pair ``(real, fake)`` of the same shapes to
        replace it.

    Combine rule: implementations are called in plugin list order, each receiving the pair
    returned by the one before. A result of another shape is an error naming the plugin, the
    tensor and both shapes.

    Used by: batch-level edits (mixing, filtering).
    """


@hookspec
def gancore_augment(
    run: "Run", images: "Tensor", c: "Tensor | None", phase: str, source: str
) -> "Tensor | None":
    """Transform the images D is about to score (augmentation such as ADA or DiffAugment).

    Called wherever the training step lets D score images:

    - ``"Dmain"``: the real batch and the fake batch (fakes detached from G), once each;
    - ``"Dreg"``: the real batch of the lazy R1 phase; R1 is the gradient of D's score with
      respect to the images *before* this transform (as in NVIDIA's loss with ADA), so the
      transform must be differentiable here too;
    - ``"Gmain"``: the fakes, attached to G's graph: G learns through the transform, so it must
      be differentiable. Under gradient accumulation with a sample-weighting plugin (top-k) it is
      also called once per micro-batch in a scoring pass without gradients; the random numbers
      it draws there (from torch's generators, ``run.rng``, ``run.randn`` / ``run.rand`` or
      ``run.rng_for(name)``) are replayed exactly when the micro-batch is trained, so its draws
      must not depend on whether gradients are enabled, and a stateful plugin sees each Gmain
      batch twice.

    Draw per-sample randomness with ``run.rand`` / ``run.randn`` (the same for any number of
    processes, different on every rank's rows).

    The loss hooks then see D's scores of the transformed images, as ``real`` / ``fake``, and the
    images before it as ``real_unaugmented`` / ``fake_unaugmented``; ``gancore_sample_weights``
    (top-k) ranks the scores of what D actually scored.

    :param run: the running training session.
    :param images: the batch ``[N, ...]``, as the plugin before this one left it.
    :param c: the batch's labels ``[N, c_dim]``, or None for an unconditional run.
    :param phase: ``"Dmain"``, ``"Dreg"`` or ``"Gmain"``.
    :param source: ``"real"`` or ``"fake"``.
    :returns: the images D will score, of the same shape, or None to leave them unchanged.

    Combine rule: applied in plugin list order, each implementation receiving the images the one
    before returned. A result of another shape is an error naming the plugin and both shapes, and
    so is a result cut off from the graph when the images were attached to it (in any phase).

    Used by: gancore-augment (ADA, DiffAugment), consistency regularisation.
    """


@hookspec
def gancore_d_loss(
    run: "Run",
    real: "Tensor",
    fake: "Tensor",
    d_real: "Tensor",
    d_fake: "Tensor",
    d_real_features: "dict[int, Tensor]",
    d_fake_features: "dict[int, Tensor]",
    g_features: "dict[int, Tensor]",
    c_real: "Tensor | None",
    c_fake: "Tensor | None",
    real_unaugmented: "Tensor",
    fake_unaugmented: "Tensor",
) -> "LossTerm | list[LossTerm] | None":
    """Add terms to D's loss in its main step.

    Called in the Dmain phase after D has scored the real and the fake batch. Gradients flow
    into D (and into modules attached to it); G is frozen in this phase but still passes
    gradients through (running G's synthesis in here is allowed and trains only D's side).

    The three feature arguments are computed only when some implementation names them (the
    backbone needs the ``d_features`` / ``g_features`` capability; declare it in ``requires``).
    Under gradient accumulation (``train.batch_per_gpu``) the hook is called once per
    micro-batch.

    :param run: the running training session.
    :param real: the real batch as D saw it (after ``gancore_augment``).
    :param fake: the fake batch as D saw it (detached from G's training graph).
    :param d_real: D's logits for ``real``, shape ``[N]``, attached.
    :param d_fake: D's logits for ``fake``, shape ``[N]``, attached.
    :param d_real_features: D's block outputs for ``real``, ``{resolution: [N, C, r, r]}``, attached.
    :param d_fake_features: D's block outputs for ``fake``, attached.
    :param g_features: G's block outputs for the fake batch, ``{resolution: [N, C, r, r]}``,
        detached (computed before ``gancore_before_d_step`` changed the batch, if it did).
    :param c_real: the real batch's labels ``[N, c_dim]``, or None (unconditional run).
    :param c_fake: the labels the fakes were generated with, or None.
    :param real_unaugmented: the real batch before ``gancore_augment`` (GLeaD reconstructs it).
    :param fake_unaugmented: the fake batch before ``gancore_augment``, detached.
    :returns: a LossTerm, a list of them, or None.

    Combine rule: all terms are summed (``weight * value``) into D's loss; each is reported in
    the stats as ``Loss/D/<plugin>_<term>``, unweighted (its ``value``). Order does not matter. A
    term's value must be one number (a 0-d tensor): reduce a per-sample loss yourself.

    Used by: GLeaD reconstruction.
    """


@hookspec
def gancore_d_reg_loss(
    run: "Run",
    real: "Tensor",
    d_real: "Tensor",
    d_real_features: "dict[int, Tensor]",
    c_real: "Tensor | None",
    real_unaugmented: "Tensor",
) -> "LossTerm | list[LossTerm] | None":
    """Add terms to D's loss in its lazy regularisation step.

    Called in the Dreg phase (every ``train.d_reg_interval`` steps, when R1 is on), after D has
    scored the real batch with gradients enabled for the input.

    :param run: the running training session; ``run.config.train.d_reg_interval`` is the
        interval gain that lazy terms usually multiply by.
    :param real: the real batch as D saw it (after ``gancore_augment``), attached to
        ``real_unaugmented``.
    :param d_real: D's logits for ``real``, shape ``[N]``, attached.
    :param d_real_features: D's block outputs for ``real`` (computed only when an implementation
        names this argument).
    :param c_real: the batch's labels ``[N, c_dim]``, or None.
    :param real_unaugmented: the real batch before ``gancore_augment``, with ``requires_grad``
        set: R1 is D's gradient with respect to it.
    :returns: a LossTerm, a list of them, or None.

    Combine rule: all terms are summed (``weight * value``) into the Dreg loss and reported,
    unweighted, as ``Loss/Dreg/<plugin>_<term>``. Order does not matter.

    Used by: GLeaD (its real term in the R1 phase).
    """


@hookspec
def gancore_sample_weights(
    run: "Run", fake: "Tensor", d_fake: "Tensor", fake_unaugmented: "Tensor"
) -> "Tensor | None":
    """Weight each fake sample in G's adversarial loss.

    Called in the Gmain phase, after D has scored the current fakes and before G's adversarial
    loss is reduced: once per step, over the process's whole batch. Under gradient accumulation
    (``train.batch_per_gpu``) the core first scores every micro-batch's fakes without gradients
    and calls this hook once with all of them (``fake`` then detached), so a selection such as
    top-k is made over the batch, not within each micro-batch; the micro-batches are then
    generated again with the same random numbers and weighted with their slice.

    :param run: the running training session.
    :param fake: the generated batch as D saw it (after ``gancore_augment``).
    :param d_fake: D's logits for ``fake``, shape ``[N]``, detached.
    :param fake_unaugmented: the generated batch before ``gancore_augment``.
    :returns: non-negative weights of shape ``[N]``, or None to abstain.

    Combine rule: the weights of all plugins are multiplied; G's adversarial loss is
    ``sum(w * loss) / sum(w)`` over the global batch, so a 0/1 mask averages over the kept
    samples. Order does not matter. The product is passed to ``gancore_teacher_loss`` as
    ``weights``.

    Used by: gancore-topk.
    """


@hookspec
def gancore_g_loss(
    run: "Run",
    fake: "Tensor",
    d_fake: "Tensor",
    inputs: "dict[str, Any]",
    d_fake_features: "dict[int, Tensor]",
    c_fake: "Tensor | None",
    fake_unaugmented: "Tensor",
) -> "LossTerm | list[LossTerm] | None":
    """Add terms to G's loss in its main step.

    Called in the Gmain phase, after G's adversarial loss is computed. Gradients flow into G;
    D is frozen in this phase (its parameters get no update) but passes gradients through.

    :param run: the running training session.
    :param fake: the generated batch as D saw it (after ``gancore_augment``), attached to G's graph.
    :param d_fake: D's logits for ``fake``, shape ``[N]``, attached.
    :param inputs: what produced the fakes: ``{"z": ..., "c": ... or None, "cond": {...}}``.
    :param d_fake_features: D's block outputs for ``fake`` from the same forward pass,
        ``{resolution: [N, C, r, r]}``, attached to G's graph (computed only when an
        implementation names this argument; needs the ``d_features`` capability).
    :param c_fake: the labels the fakes were generated with (``inputs["c"]``), or None.
    :param fake_unaugmented: G's output before ``gancore_augment``, attached.
    :returns: a LossTerm, a list of them, or None.

    Combine rule: all terms are summed (``weight * value``) into G's loss and reported,
    unweighted, as ``Loss/G/<plugin>_<term>``.
    They are not multiplied by sample weights. Order does not matter.

    Used by: EqGAN-SA alignment.
    """


@hookspec
def gancore_teacher_loss(
    run: "Run",
    fake: "Tensor",
    inputs: "dict[str, Any]",
    weights: "Tensor | None",
    weight_sum: "Tensor | None",
    fake_unaugmented: "Tensor",
) -> "LossTerm | list[LossTerm] | None":
    """Add a teacher's guidance to G's loss.

    Called in the Gmain phase, after ``gancore_g_loss``.

    :param run: the running training session.
    :param fake: the generated batch as the student D saw it (after ``gancore_augment``),
        attached to G's graph.
    :param inputs: what produced the fakes: ``{"z": ..., "c": ... or None, "cond": {...}}``.
    :param weights: the combined sample weights ``[N]`` of this batch (None when no plugin
        weights samples).
    :param weight_sum: the denominator of the weighted mean over the whole global batch, as the
        core uses it for G's adversarial loss (None without weights): a teacher term that respects
        the weights reduces as ``(weights * loss).sum() / weight_sum``, which is exact under data
        parallelism and gradient accumulation too (the weight sum of all processes' and micro-batches'
        samples, scaled for the core's averaging over them).
    :param fake_unaugmented: G's output before ``gancore_augment``, attached.
    :returns: a LossTerm, a list of them, or None.

    Combine rule: all terms are summed (``weight * value``) into G's loss and reported,
    unweighted, as ``Loss/G/<plugin>_<term>``.
    Order does not matter.

    Used by: DGL.
    """


@hookspec
def gancore_step_end(run: "Run", stats: "dict[str, float]") -> None:
    """Observe (and add to) the statistics of the step just finished.

    Called at the end of every training iteration, after the EMA update; ``run.step`` is still
    the index of the finished step.

    :param run: the running training session.
    :param stats: this step's statistics (loss terms by name, ...); plugins may add entries,
        which are logged like the core's.

    Combine rule: all implementations are called, in plugin list order.

    Used by: logging, schedules.
    """


@hookspec
def gancore_state_dict(run: "Run") -> "dict[str, Any] | None":
    """Return the plugin's training state for a checkpoint.

    Called whenever a checkpoint is written (by rank 0 alone under data parallelism: keep the
    state the same on every rank, e.g. with ``gancore.distributed.all_reduce_mean``), and once
    at set-up, when the state goes through JSON and ``gancore_load_state_dict`` and is saved
    again: a state that is not JSON or does not come back the same is an error naming the
    plugin before training starts. A plugin implements both hooks or neither.

    :param run: the running training session.
    :returns: a JSON-serialisable dict (or None for no state).

    Combine rule: each plugin's dict is stored in its own namespace (under its name) in the
    checkpoint's ``state.json``; plugins never see each other's state.

    Used by: top-k (k), DGL (stage).
    """


@hookspec
def gancore_parameter_counts(run: "Run") -> "dict[str, int] | None":
    """Report the parameters of modules the plugin owns outside G and D.

    Called by ``run.parameter_counts()`` (``gancore info``, ``summary.json``). Modules attached to
    G or D are counted already; this is for networks such as a frozen teacher.

    :param run: the run.
    :returns: ``{name: count}`` or None.

    Combine rule: merged; each key is reported as ``<plugin>.<name>``.

    Used by: DGL (the teacher discriminator).
    """


@hookspec
def gancore_load_state_dict(run: "Run", state: "dict[str, Any]") -> None:
    """Restore the plugin's training state from a checkpoint.

    Called when a run resumes, after ``gancore_setup`` and after the networks' weights are
    loaded, on every rank (each gets rank 0's state); only for plugins that saved a state. Also
    called once at set-up with the state ``gancore_state_dict`` just returned (a round-trip check).

    :param run: the run being resumed.
    :param state: exactly the dict this plugin's ``gancore_state_dict`` returned.

    Combine rule: each plugin receives its own namespace only.

    Used by: top-k (k), DGL (stage).
    """


@hookspec
def gancore_model_card(run: "Run") -> "str | None":
    """Describe the plugin's part in a run for its model card.

    Called when a run is saved for publishing or pushed to the Hub, and for ``gancore info``.

    :param run: the run being described.
    :returns: a markdown fragment (a few lines: what was used, with which settings), or None.

    Combine rule: the fragments are joined in plugin list order, each under the plugin's name.

    Used by: every method plugin.
    """
