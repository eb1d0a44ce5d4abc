"""The README.md model card of an exported or published run: Hub metadata, usage, methods, training, metrics."""

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from gancore.run import Run

__all__ = ["render_model_card"]


def _front_matter(run: "Run", metrics: dict[str, float]) -> str:
    tags = ["gan", "gancore", run.config.backbone.name, *run.config.plugin_names]
    lines = ["---", "library_name: gancore", "tags:"]
    lines += [f"- {json.dumps(tag)}" for tag in dict.fromkeys(tags)]
    lines += ["datasets:", f"- {json.dumps(run.config.data.name)}"]
    if metrics:
        lines += ["metrics:"] + [f"- {json.dumps(name.split('/')[-1])}" for name in metrics]
    lines.append("---")
    return "\n".join(lines)


def render_model_card(
    run: "Run",
    repo_id: str | None = None,
    metrics: dict[str, float] | None = None,
    counts: dict[str, int] | None = None,
    protocol: dict[str, Any] | None = None,
) -> str:
    """A model card for ``run`` (as loaded from a checkpoint), with each plugin's section.

    ``counts``: parameter counts as the training run reported them (summary.json), which include
    modules that only exist during training (a DGL teacher); default: the run's own.
    """
    metrics = dict(metrics or {})
    config = run.config
    counts = {**run.parameter_counts(), **(counts or {})}
    shape = "x".join(str(s) for s in run.data_info.shape)
    source = json.dumps(repo_id or "path/to/this/folder")
    methods = run.hooks.model_card(run).strip()
    limited = f", its first {config.data.max_items:,} items only" if config.data.max_items else ""
    limited += ", doubled with x-flips" if config.data.xflip else ""
    parts = [
        _front_matter(run, metrics),
        f"# {repo_id.split('/')[-1] if repo_id else 'gancore model'}",
        (
            f"A GAN trained with [gancore](https://pypi.org/project/gancore/): backbone `{config.backbone.name}` "
            f"({counts['G']:,} parameters in G, {counts['D']:,} in D) on `{config.data.name}`{limited} "
            f"(samples of shape {shape}{f', {run.data_info.c_dim} classes' if run.data_info.c_dim else ''}), "
            f"{run.step:,} steps at batch {config.train.batch} ({run.kimg:.1f} kimg), seed {config.train.seed}."
        ),
        "## Use",
        "```bash\npip install gancore "
        + " ".join(sorted({f"gancore-{name.replace('_', '-')}" for name in config.plugin_names}))
        + "\n```",
        f"```python\nimport gancore\n\nG = gancore.from_pretrained({source})   # G_ema\n"
        "samples = G.sample(16, seed=0)\n```",
        "The files are JSON and safetensors only: `config.json` (the run's resolved config, with the "
        "versions of gancore and every plugin), `gan_index.json`, and `G.safetensors`, `D.safetensors`, "
        "`G_ema.safetensors`.",
    ]
    if methods:
        parts += ["## Methods", methods]
    t = config.train
    parts += [
        "## Parameters",
        "| network | parameters |\n|---|---|\n" + "\n".join(f"| {k} | {v:,} |" for k, v in counts.items()),
        "## Training",
        "| setting | value |\n|---|---|\n"
        + "\n".join(f"| {k} | {v} |" for k, v in (
            ("loss", t.loss), ("learning rates (G, D)", f"{t.g_lr}, {t.d_lr}"), ("Adam betas", list(t.betas)),
            ("R1 gamma", f"{t.r1_gamma} every {t.d_reg_interval} steps"),
            ("path length weight", f"{t.pl_weight} every {t.g_reg_interval} steps"),
            ("EMA half-life", f"{t.ema_kimg} kimg"), ("precision", t.precision),
        )),
    ]
    if metrics:
        parts += [
            "## Metrics",
            "| metric | value |\n|---|---|\n" + "\n".join(f"| {k.split('/')[-1]} | {v:.4g} |" for k, v in metrics.items()),
            _protocol_text(run, protocol),
        ]
    return "\n\n".join(parts) + "\n"


def _protocol_text(run: "Run", protocol: dict[str, Any] | None) -> str:
    """How the metrics were measured, in one paragraph."""
    protocol = protocol or {}
    if "extractor" not in protocol:
        text = (
            f"Protocol: G_ema at step {run.step:,}, {run.config.train.eval_samples:,} samples from fixed latents, "
            f"measured by the `{run.config.data.name}` data set's own metrics."
        )
    else:
        text = (
            f"Protocol: G_ema at step {run.step:,}; {protocol['fake_samples']:,} generated samples (seed "
            f"{protocol['fake_seed']}) against {protocol['real_samples']:,} real ones ({protocol['reference']}); "
            f"features of the `{protocol['extractor']}` extractor ({protocol['feature_dim']} dimensions); "
            f"KID: {protocol['kid']}; precision/recall: {protocol['pr']}."
        )
    if "memorisation" in protocol:
        text += f" Memorisation: {protocol['memorisation']}."
    return text


def render_import_card(run: "Run", provenance: dict[str, Any], notes: tuple[str, ...] = ()) -> str:
    """The model card of a folder made by ``gancore import``: where the weights come from
    (file, sha256, URL), that they keep their source's licence, and what differs on purpose."""
    config = run.config
    counts = run.parameter_counts()
    shape = "x".join(str(s) for s in run.data_info.shape)
    classes = f", {run.data_info.c_dim} classes" if run.data_info.c_dim else ""
    url = f" from <{provenance['url']}>" if provenance.get("url") else ""
    parts = [
        _front_matter(run, {}),
        f"# {provenance['file']} (imported)",
        (
            f"A published checkpoint, `{provenance['file']}`{url} (sha256 `{provenance['sha256']}`), imported "
            f"into [gancore](https://pypi.org/project/gancore/) with `gancore import`: backbone "
            f"`{config.backbone.name}` ({counts['G']:,} parameters in G, {counts['D']:,} in D), images of "
            f"shape {shape}{classes}. The file's code was not run: its tensors and settings were read and "
            "mapped onto gancore's own networks."
        ),
        "## Licence",
        "The weights keep the licence of their source: read it where the file was published before "
        "using or redistributing them. gancore's licence does not cover them.",
        "## Use",
        "```python\nimport gancore\n\nG = gancore.from_pretrained(\"path/to/this/folder\")   # G_ema, noise mode const\n"
        "samples = G.sample(16, seed=0)\n```",
    ]
    if notes:
        parts += ["## Differences from the source", "\n".join(f"- {note}" for note in notes)]
    parts += [
        "## Parameters",
        "| network | parameters |\n|---|---|\n" + "\n".join(f"| {k} | {v:,} |" for k, v in counts.items()),
    ]
    return "\n\n".join(parts) + "\n"
