"""The ``gancore`` command line: train, resume, sample, eval, export, push, import, compare, info, plugins, hooks."""

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

from gancore.files import write_json_atomically

__all__ = ["main"]

#: Exit status for bad input (config, data, arguments): nothing was written.
EXIT_USAGE = 2


def _fail(message: str, status: int = 1) -> int:
    print(f"gancore: {message}", file=sys.stderr)
    return status


def _default_out_dir(config_path: str) -> Path:
    stem = Path(config_path).stem or "run"
    candidate = Path("runs") / stem
    n = 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = Path("runs") / f"{stem}-{n}"
    return candidate


def _describe_results(run: Any) -> str:
    out = run.out_dir
    lines = [f"done: {run.step} steps, {run.kimg:.1f} kimg. Results in {out}/"]
    for name in ("config.json", "stats.jsonl", "summary.json"):
        lines.append(f"  {out / name}")
    samples = sorted((out / "samples").glob("*.png"))
    if samples:
        lines.append(f"  {samples[-1]}  (samples)")
    checkpoints = sorted((out / "checkpoints").glob("step-*"))
    if checkpoints:
        lines.append(f"  {checkpoints[-1]}/  (checkpoint; continue with: gancore resume {shlex.quote(str(out))} --steps N)")
    if run.metrics:
        lines.append(f"metrics of G_ema ({run.config.train.eval_samples} samples):")
        lines += [f"  {key.removeprefix('Metrics/')}: {value:.4g}" for key, value in run.metrics.items()]
    return "\n".join(lines)


def _build(run_class: Any, config: Any, source: str, **kwargs: Any) -> Any:
    """``Run.build``, with config problems found while building reported against ``source``."""
    from gancore.config import ConfigError

    try:
        return run_class.build(config, **kwargs)
    except ConfigError as exc:
        raise ConfigError(source, exc.problems) from None


def cmd_train(args: argparse.Namespace) -> int:
    """Train a run from a config file."""
    from gancore.api import load_config
    from gancore.plugins import PluginManager
    from gancore.run import Run
    from gancore.runfolder import RunLock, clear_run_files

    manager = PluginManager()
    overrides = [*args.set, *([f"train.steps={args.steps}"] if args.steps is not None else [])]
    overrides += [f"train.init={args.init}"] if args.init else []
    config = load_config(args.config, overrides, manager=manager)
    out = Path(args.out) if args.out else _default_out_dir(args.config)
    args.out = str(out)  # what main() reports if training is aborted
    if out.exists() and not out.is_dir():
        return _fail(f"--out {out} is a file, not a folder", EXIT_USAGE)
    first_rank = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 owns the folder
    restart = first_rank and out.exists() and any(out.iterdir())
    refusal = _why_not_restart(out) if restart else None
    if refusal:
        return _fail(refusal, EXIT_USAGE)
    run = _build(Run, config, args.config, out_dir=out, manager=manager)
    if restart:
        run.lock = RunLock(out).acquire()  # refuses while another process trains there
        refusal = _why_not_restart(out)  # again, holding the lock: a run may have finished meanwhile
        if refusal:
            run.lock.release()
            return _fail(refusal, EXIT_USAGE)
        clear_run_files(out)
        print(f"gancore: {out} holds a run that wrote no checkpoint; starting it again there "
              "(its stats.jsonl and samples are replaced)", file=sys.stderr)
    if first_rank:
        print(f"training {config.backbone.name} on {config.data.name} for {config.train.steps} steps "
              f"on {run.device}; writing to {out}/", file=sys.stderr)
    run.train()
    if first_rank:
        print(_describe_results(run))
    return 0


def _why_not_restart(out: Path) -> str | None:
    """Why ``gancore train --out OUT`` must not start a run in the non-empty folder OUT (None: it
    holds a run that failed before its first checkpoint, which may be started again)."""
    from gancore.checkpoint import step_folders
    from gancore.runfolder import is_restartable

    if is_restartable(out):
        return None
    if step_folders(out / "checkpoints"):
        return (f"output folder {out} holds a run with checkpoints; go on with `gancore resume "
                f"{shlex.quote(str(out))}`, or choose another --out")
    return f"output folder {out} is not empty and holds no failed gancore run to start again; choose another --out"


def cmd_resume(args: argparse.Namespace) -> int:
    """Continue a run from its newest checkpoint."""
    from gancore.run import Run

    first_rank = os.environ.get("RANK", "0") == "0"
    confirm = None if args.yes else _ask if sys.stdin.isatty() else _no_terminal
    run = Run.resume(args.run_dir, steps=args.steps, overrides=args.set, from_previous=args.from_previous,
                     fork=args.fork, discard_later=args.discard_later, confirm=confirm)
    args.run_dir = str(run.out_dir or args.run_dir)  # a fork goes on elsewhere: what main() reports
    if first_rank:
        print(f"resuming at step {run.step} of {run.config.train.steps}", file=sys.stderr)
    run.train(args.steps)
    if first_rank:
        print(_describe_results(run))
    return 0


def _no_terminal(question: str) -> bool:
    """Refuse a deletion that cannot be asked about (no terminal): ``--yes`` confirms it."""
    from gancore.checkpoint import TimelineError

    raise TimelineError(f"--discard-later would {question[0].lower()}{question[1:-1]}; there is no terminal to "
                        "ask on, so give --yes to confirm")


def _ask(question: str) -> bool:
    """Ask a yes/no question on the terminal (no, unless the answer starts with y)."""
    try:
        answer = input(f"gancore: {question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower().startswith("y")


def cmd_sample(args: argparse.Namespace) -> int:
    """Write a grid (or scatter plot) of samples from a run's G_ema."""
    from gancore.samples import save_samples
    from gancore.run import Run

    if args.n <= 0:
        return _fail(f"--n must be > 0, got {args.n}", EXIT_USAGE)
    if Path(args.out).is_dir():
        return _fail(f"--out {args.out} is a folder; give a file name such as grid.png", EXIT_USAGE)
    cond = None
    if args.cond:
        from gancore.checkpoint import read_tensors

        cond = read_tensors(Path(args.cond))
    from gancore.pretrained import from_pretrained, is_exported

    source = Path(args.source)
    if source.exists() and not is_exported(source):
        run = Run.for_sampling(source)
        what, c_dim = f"step {run.step}", run.data_info.c_dim
        draw = lambda n, c: run.sample(n, seed=args.seed, c=c, cond=cond)  # noqa: E731
    else:  # an exported folder or a Hub repo
        G = from_pretrained(args.source)
        what, c_dim = args.source, G.c_dim
        draw = lambda n, c: G.sample(n, seed=args.seed, c=c, **(cond or {}))  # noqa: E731
    labels, columns = None, None
    if args.classes is not None or (c_dim > 0 and cond is None):  # one row per class
        from gancore.metrics.conditional import class_labels, grid_classes

        if c_dim == 0:
            return _fail(f"--class: {what} is unconditional (it has no classes)", EXIT_USAGE)
        try:
            if args.classes is not None:
                classes, columns = [int(k) for k in args.classes.split(",") if k.strip()], args.n
                if not classes:
                    raise ValueError("give one or more class numbers, e.g. --class 3 or --class 3,7")
            else:
                classes, columns = grid_classes(c_dim, args.n)
            labels = class_labels(c_dim, columns, classes)
        except ValueError as exc:
            return _fail(f"--class {args.classes}: {exc}", EXIT_USAGE)
        if cond is not None and any(v.shape[0] != len(labels) for v in cond.values()):
            return _fail(f"--cond {args.cond}: give {len(labels)} rows (one per sample: {len(classes)} classes x "
                         f"--n {columns}), not {next(iter(cond.values())).shape[0]}", EXIT_USAGE)
    try:
        samples = draw(len(labels) if labels is not None else args.n, labels)
    except ValueError as exc:
        return _fail(f"--cond {args.cond}: {exc}", EXIT_USAGE)
    try:
        path = save_samples(Path(args.out), samples, columns=columns if samples.ndim == 4 else None)
    except ValueError as exc:
        return _fail(str(exc), EXIT_USAGE)
    rows = f" ({len(samples) // columns} classes, one per row)" if columns else ""
    print(f"wrote {len(samples)} samples of {what}{rows} to {path}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Measure G_ema (and, for ``memorisation``, D) of a run or published model and print a table;
    write the results as JSON."""
    import attrs

    from gancore.data import build_dataset
    from gancore.metrics.evaluate import default_cache_dir
    from gancore.evaluation import measure_conditional, split_config
    from gancore.metrics.generative import METRICS
    from gancore.metrics.memorisation import D_METRICS, memorisation
    from gancore.metrics.names import CONDITIONAL_METRICS
    from gancore.pretrained import load_run
    from gancore.run import resolve_device

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    known = METRICS + CONDITIONAL_METRICS + D_METRICS
    unknown = [m for m in metrics if m not in known]
    if unknown or not metrics:
        return _fail(f"--metrics: unknown {unknown or 'none given'}; known: {', '.join(known)}", EXIT_USAGE)
    if args.n <= 1:
        return _fail(f"--n must be > 1, got {args.n}", EXIT_USAGE)
    of_samples = [m for m in metrics if m in METRICS]
    conditional = [m for m in metrics if m in CONDITIONAL_METRICS]
    components = ("G_ema", "D") if any(m in D_METRICS for m in metrics) else ("G_ema",)
    run = load_run(args.source, components=components).to(resolve_device(args.device))
    if of_samples and not run.data_info.is_image:
        return _fail(f"{args.source}: FID, KID and precision/recall measure images; this model makes points", EXIT_USAGE)
    data_config = attrs.evolve(run.config.data, path=args.data_path) if args.data_path else run.config.data
    split = args.split or run.config.train.metrics_split
    reference_config = split_config(data_config, split) if split else data_config
    if conditional and run.data_info.c_dim == 0:
        return _fail(f"--metrics {', '.join(conditional)}: {args.source} is unconditional (it has no classes)",
                     EXIT_USAGE)
    if conditional:
        reference_config = attrs.evolve(reference_config, labels=True)
    if any(m in D_METRICS for m in metrics) and reference_config.split == data_config.split:
        return _fail(f"--metrics memorisation compares D on its training images with images it never saw; "
                     f"give --split with a split other than the training data's {data_config.split!r}", EXIT_USAGE)
    source = Path(args.source)
    default = source / f"eval-step-{run.step:06d}.json" if (source / "checkpoints").is_dir() else Path("eval.json")
    out = Path(args.json) if args.json else default
    if out.exists() and not args.force:  # before measuring: an evaluation can take minutes
        return _fail(f"{out} exists (an earlier evaluation); give another --json file, or --force to replace it",
                     EXIT_USAGE)
    reference = build_dataset(reference_config)
    results: dict[str, float] = {}
    protocol: dict[str, Any] = {}
    if of_samples:
        evaluation = run.measure(of_samples, args.n, args.seed, args.extractor, reference, default_cache_dir(),
                                 reference_config)
        results.update(evaluation.metrics)
        protocol = evaluation.protocol
        print(f"{args.source} (step {run.step}), {protocol['extractor']} features, {args.n} samples "
              f"vs {protocol['real_samples']} real ({protocol['reference']})")
    if conditional:
        figures, per_class = measure_conditional(run, conditional, args.n, args.seed, args.extractor, reference)
        results.update(figures)
        protocol.update(per_class)
        for metric, entry in per_class.items():
            print(f"{metric} per class ({entry['samples_per_class']} samples each): "
                  + ", ".join(f"{k}: {v:.4g}" for k, v in enumerate(entry["per_class"])))
    if any(m in D_METRICS for m in metrics):
        results.update(memorisation(run.D, build_dataset(data_config), reference, args.n, run.device))
        protocol["memorisation"] = (f"D's mean score on up to {args.n} of its training images minus on as many of "
                                    f"the {reference_config.split} split")
    print("| metric | value |\n|---|---|")
    for key, value in results.items():
        print(f"| {key.removeprefix('Metrics/')} | {value:.4f} |")
    if "kid" in metrics:
        print(f"kid: {protocol['kid']}")
    payload = {"source": str(args.source), "step": run.step, "metrics": results, "protocol": protocol}
    write_json_atomically(out, payload)
    print(f"wrote {out}")
    return 0


def cmd_train_extractor(args: argparse.Namespace) -> int:
    """Train the Fashion-MNIST classifier whose features give the domain FID; report its test accuracy."""
    from gancore.metrics.fmnist_cnn import WEIGHTS_PATH, train_fmnist_cnn

    if args.epochs <= 0:
        return _fail(f"--epochs must be > 0, got {args.epochs}", EXIT_USAGE)
    out = Path(args.out) if args.out else WEIGHTS_PATH
    report = train_fmnist_cnn(out, data_path=args.data_path, epochs=args.epochs, seed=args.seed)
    print(f"wrote {out}: test accuracy {report['test_accuracy']:.4f} after {args.epochs} epochs")
    return 0


def _checkpoint_arg(args: argparse.Namespace) -> Path:
    """The run folder, or its checkpoint named by ``--checkpoint``."""
    path = Path(args.run_dir)
    if args.checkpoint:
        name = args.checkpoint if args.checkpoint.startswith("step-") else f"step-{int(args.checkpoint):06d}"
        path = path / "checkpoints" / name
    return path


def cmd_export(args: argparse.Namespace) -> int:
    """Write a model folder (config.json, gan_index.json, safetensors, samples.png, README.md)."""
    from gancore.pretrained import export

    folder = export(_checkpoint_arg(args), args.out_dir)
    print(f"wrote {folder}/ (load it with gancore.from_pretrained({str(folder)!r}))")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    """Export a run's checkpoint and upload it to the Hub."""
    from gancore.pretrained import push_to_hub

    url = push_to_hub(_checkpoint_arg(args), args.repo_id, private=args.private, revision=args.revision)
    print(f"pushed to {args.repo_id}: {url}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Import a published checkpoint (file or URL) into a model folder."""
    from gancore.importing import import_checkpoint

    out = import_checkpoint(args.source, args.out_dir)
    print(f"imported {args.source} into {out}/ (use: gancore sample {shlex.quote(str(out))}, "
          f"gancore.from_pretrained({str(out)!r}))")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Train variants of a run over the same seeds and report whether they differ beyond noise."""
    from gancore.comparison import compare
    from gancore.config import parse_value

    seeds = int(args.seeds) if args.seeds.isdigit() else [int(s) for s in args.seeds.split(",") if s.strip()]
    out = Path(args.out) if args.out else Path("compare") / Path(args.configs[0]).stem
    try:
        parameters = {}
        for item in args.launcher_param:
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"--launcher-param {item!r}: expected KEY=VALUE")
            parameters[key.strip()] = parse_value(value.strip())
        report = compare(args.configs, vary=args.vary, overrides=args.set, seeds=seeds, out=out, jobs=args.jobs,
                         curve_every=args.curve_every, launcher=args.launcher, launcher_parameters=parameters)
    except ValueError as exc:
        return _fail(f"compare: {exc}", EXIT_USAGE)
    except RuntimeError as exc:
        return _fail(f"compare: {exc}; finished cells are kept, run the same command again to go on", 1)
    except KeyboardInterrupt:
        return _fail("compare: interrupted; the running cells wrote checkpoints; run the same command "
                     "again to go on from them", 130)
    print(f"report: {out / 'report.md'}")
    for name, per_metric in report["differences"].items():
        for metric, difference in per_metric.items():
            low, high = difference["interval"]
            print(f"  {name} vs {report['baseline']}: {metric} {difference['mean']:+.4g} "
                  f"[{low:+.4g}, {high:+.4g}] -> {difference['reading']}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Build a run without training and describe it."""
    from gancore.api import load_config
    from gancore.data import DataError, declared_info
    from gancore.plugins import PluginManager
    from gancore.run import Run

    manager = PluginManager()
    config = load_config(args.config, args.set, manager=manager)
    try:
        run = _build(Run, config, args.config, manager=manager)
        missing_data = None
    except DataError as exc:
        # A recipe for a data set that is not on this machine still describes its networks, from the
        # shape its [data] table declares; files only training needs (a DGL teacher, LPIPS) are not loaded.
        info = declared_info(config.data)
        if info is None:
            raise
        run = _build(Run, config, args.config, manager=manager, data_info=info, for_training=False)
        missing_data = str(exc)
    resolved = run.resolved_config()
    meta = resolved.pop("gancore")
    report = {
        "config": resolved,
        "backbone": {"name": run.backbone.name, "plugin": meta["backbone_plugin"],
                     "capabilities": sorted(run.backbone.capabilities)},
        "plugins": [{"name": name, **meta["plugins"].get(name, {})} for name in config.plugin_names],
        "data": {**meta["data_info"], "size": len(run.dataset) if run.dataset is not None else None,
                 "available": missing_data is None, "problem": missing_data},
        "device": str(run.device),
        "params": run.parameter_counts(),
        "gancore_version": meta["version"],
        "model_card": run.hooks.model_card(run),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"gancore {report['gancore_version']}")
    print(f"backbone: {run.backbone.name} (from plugin {meta['backbone_plugin']}); "
          f"capabilities: {', '.join(report['backbone']['capabilities'])}")
    stack = ", ".join(f"{p['name']} {p.get('version') or ''}".strip() for p in report["plugins"]) or "none"
    print(f"plugins: {stack}")
    if missing_data is None:
        print(f"data: {report['data']['name']}, sample shape {report['data']['shape']}, "
              f"{report['data']['size']} items, c_dim {report['data']['c_dim']}")
    else:
        print(f"data: {report['data']['name']} is not available here ({missing_data}); the networks below are "
              f"built from the shape the config declares, {report['data']['shape']}, and files that only "
              "training reads (a teacher, LPIPS weights) were not loaded")
    print("parameters:")
    for name, count in report["params"].items():
        print(f"  {name:<32} {count:>12,}")
    if report["model_card"]:
        print("model card sections of the plugins:")
        print(report["model_card"].rstrip())
    print("resolved config:")
    print(json.dumps(resolved, indent=2))
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    """List installed plugins with versions and the hooks each implements."""
    import attrs

    from gancore.plugins import PluginManager

    manager = PluginManager()
    infos = manager.info()
    broken = [(info.name, problem) for info in infos for problem in info.problems]
    if args.json:
        print(json.dumps([attrs.asdict(info) for info in infos], indent=2))
    elif not infos:
        print("no plugins installed; add one with: pip install gancore-<name>")
    for info in [] if args.json else infos:
        where = f"{info.distribution} {info.version}" if info.distribution else info.source
        print(f"{info.name} [{info.kind}] ({where}) {info.description}")
        if info.kind == "backbone":
            mine = [n for n in manager.backbones if manager.backbone_owner(n) == info.name]
            print(f"    backbones: {', '.join(sorted(mine))}")
        print(f"    hooks: {', '.join(info.hooks) or 'none'}")
        for problem in info.problems:
            print(f"    problem: {problem}")
    if args.check:
        for name, problem in broken:
            print(f"gancore: plugin {name!r}: {problem}", file=sys.stderr)
        return 1 if broken else 0
    return 0


def cmd_hooks(args: argparse.Namespace) -> int:
    """Print the hook reference (markdown)."""
    from gancore.hookdocs import render_hooks_markdown

    print(render_hooks_markdown(), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``gancore`` command."""
    from gancore.version import __version__

    parser = argparse.ArgumentParser(prog="gancore", description="Train GANs with stackable method plugins.")
    parser.add_argument("--version", action="version", version=f"gancore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a run from a config file")
    p.add_argument("config", help="run file (TOML) or a run's config.json")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.batch=64 (repeatable)")
    p.add_argument("--out", help="run folder (default: runs/<config name>)")
    p.add_argument("--steps", type=int, help="shorthand for --set train.steps=N")
    p.add_argument("--init", metavar="MODEL",
                   help="start from a model folder or Hub repo's G, D and G_ema (gancore export / import): fine-tuning")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("resume", help="continue a run from its newest checkpoint")
    p.add_argument("run_dir", help="run folder or checkpoint folder")
    p.add_argument("--steps", type=int, help="new total number of steps (default: the run's train.steps)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    p.add_argument("--from-previous", action="store_true",
                   help="go on from the newest intact checkpoint before the newest (a damaged or diverged one)")
    p.add_argument("--fork", metavar="NEW_DIR",
                   help="go on in a new run folder (a copy of the checkpoint and its history); the run is only read")
    p.add_argument("--discard-later", action="store_true",
                   help="delete the checkpoints, stats, samples and evaluations after the checkpoint gone on from")
    p.add_argument("--yes", action="store_true", help="do not ask before --discard-later deletes")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("sample", help="write samples of a run's G_ema as a PNG grid")
    p.add_argument("source", help="run folder, checkpoint folder, exported folder or Hub repo id (user/name)")
    p.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--seed", type=int, default=0, help="latent seed (default 0)")
    p.add_argument("--out", default="samples.png", help="PNG file to write (default samples.png)")
    p.add_argument("--class", dest="classes", metavar="K[,K...]",
                   help="conditional models: --n samples of each of these classes, one row per class (default: "
                        "every class, --n samples in all)")
    p.add_argument("--cond", metavar="FILE.safetensors",
                   help="G's extra inputs given yourself (e.g. EqGAN-SA's heatmap), one tensor per key, N rows each")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("eval", help="measure a generator: FID, KID, precision/recall against its data set")
    p.add_argument("source", help="run folder, checkpoint folder, exported folder or Hub repo id")
    p.add_argument("--metrics", default="fid,kid,pr",
                   help="comma-separated: fid, kid, pr; class_accuracy, intra_fid (conditional models); memorisation "
                        "(D's score on its training images minus on held-out ones; needs --split) (default fid,kid,pr)")
    p.add_argument("--n", type=int, default=10000, help="generated samples and real reference items (default 10000)")
    p.add_argument("--extractor", help="feature extractor (default: fmnist for Fashion-MNIST, else inception)")
    p.add_argument("--seed", type=int, default=0, help="latent seed of the samples (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, ... (default auto)")
    p.add_argument("--json", help="where to write the results (default: <run>/eval-step-N.json for a run, else eval.json)")
    p.add_argument("--data-path", help="folder of the data set's files, if not where the run found them")
    p.add_argument("--split", help="compare against this split of the data set, whole (e.g. test; default: the "
                                   "run's train.metrics_split, else its training data)")
    p.add_argument("--force", action="store_true", help="replace the JSON file of an earlier evaluation")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("train-extractor", help="train the feature extractor of a domain metric (fmnist)")
    p.add_argument("name", choices=["fmnist"], help="which extractor")
    p.add_argument("--out", help="weights file to write (default: the one gancore ships, replaced atomically)")
    p.add_argument("--data-path", help="folder of the Fashion-MNIST idx files (default: where the data set module looks)")
    p.add_argument("--epochs", type=int, default=6, help="training epochs (default 6, the shipped recipe)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.set_defaults(func=cmd_train_extractor)

    p = sub.add_parser("export", help="write a run's checkpoint as a model folder (what `gancore push` uploads)")
    p.add_argument("run_dir", help="run folder or checkpoint folder")
    p.add_argument("out_dir", help="folder to write (must not exist or be empty)")
    p.add_argument("--checkpoint", help="a checkpoint of the run, e.g. step-005000 (default: the newest)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("push", help="publish a run's checkpoint (or a model folder) to the Hugging Face Hub")
    p.add_argument("run_dir", help="run folder, checkpoint folder, or model folder (gancore export / import)")
    p.add_argument("repo_id", help="Hub model repo, user/name (created if needed)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--revision", "--branch", dest="revision", help="branch to push to (created if needed)")
    p.add_argument("--checkpoint", help="a checkpoint of the run, e.g. step-005000 (default: the newest)")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("import", help="import a published checkpoint (NVIDIA's StyleGAN2 pickles, ...) as a model folder")
    p.add_argument("source", help="the checkpoint: a local file or an http(s) URL (downloaded once into the cache)")
    p.add_argument("out_dir", help="model folder to write (must not exist or be empty)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("compare", help="train variants over the same seeds; is B better than A beyond noise?")
    p.add_argument("configs", nargs="+", help="run files, one per variant (or one with --vary)")
    p.add_argument("--vary", action="append", default=[], metavar="NAME='--set KEY=VALUE ...'",
                   help="a variant of the one run file, which is a variant itself (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a change for every variant, before each variant's own (repeatable)")
    p.add_argument("--seeds", default="3", help="how many seeds (0, 1, ...) or a list, e.g. 0,1,2 (default 3)")
    p.add_argument("--out", help="folder of the cells and the report (default compare/<first run file>)")
    p.add_argument("--jobs", type=int, default=1, help="cells trained at once (default 1)")
    p.add_argument("--curve-every", type=float, metavar="KIMG", help="also evaluate every KIMG thousand images (curves)")
    p.add_argument("--launcher", choices=["local", "slurm", "submitit-local"], default="local",
                   help="where cells train: local processes (default), a Slurm job array through submitit, "
                        "or submitit's local executor")
    p.add_argument("--launcher-param", action="append", default=[], metavar="KEY=VALUE",
                   help="a submitit parameter, e.g. slurm_partition=gpu, gpus_per_node=1, timeout_min=600")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("info", help="build a run without training; print config, plugins, parameter counts")
    p.add_argument("config", help="run file (TOML) or a run's config.json")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("plugins", help="list installed plugins, their versions and hooks")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--check", action="store_true",
                   help="exit 1 if any plugin has a mistake seen without running it (a misspelt hook, ...)")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("hooks", help="print the hook reference (markdown)")
    p.set_defaults(func=cmd_hooks)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``gancore`` command; returns the exit status."""
    from gancore.checkpoint import CheckpointError, CheckpointWriteError
    from gancore.config import ConfigError
    from gancore.data import DataError
    from gancore.runfolder import RunFolderBusyError
    from gancore.signals import TrainingInterrupted
    from gancore.metrics.extractors import ExtractorUnavailableError
    from gancore.plugins import HookError, PluginError
    from gancore.memory import TrainingOutOfMemory
    from gancore.pickle_reader import PickleReadError
    from gancore.download import DownloadError
    from gancore.distributed import leave_process_group

    args = build_parser().parse_args(argv)
    succeeded = False
    try:
        status = args.func(args)
        succeeded = status == 0
        return status
    except ConfigError as exc:
        return _fail(exc.render(), EXIT_USAGE)
    except (DataError, CheckpointError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except PickleReadError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except DownloadError as exc:
        return _fail(str(exc), 1)
    except ExtractorUnavailableError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except RunFolderBusyError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except HookError as exc:
        return _fail(str(exc), 1)
    except FloatingPointError as exc:  # DivergenceError: its message names the step, value and newest checkpoint
        return _fail(str(exc), 1)
    except TrainingOutOfMemory as exc:  # names the phase, the batch, what to try and the newest checkpoint
        return _fail(str(exc), 1)
    except PluginError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except TrainingInterrupted as exc:
        hint = (f"; continue with: gancore resume {shlex.quote(str(exc.checkpoint.parent.parent))}"
                if exc.checkpoint is not None else "")
        return _fail(f"interrupted: {exc}{hint}", exc.exit_status)
    except OSError as exc:  # a full disk, a quota, permissions: one line, earlier results intact
        return _fail(str(exc) if isinstance(exc, CheckpointWriteError) else
                     f"could not write {exc.filename or 'a file'}: {exc.strerror or exc}", 1)
    except KeyboardInterrupt as exc:  # Ctrl-C outside training, or a second stop signal in it
        return _fail(f"aborted; {_intact(args)}", getattr(exc, "exit_status", 130))
    finally:
        # Under torchrun every rank is done before any exits; after a failure a peer may never come.
        leave_process_group(wait_for_peers=succeeded)


def _intact(args: argparse.Namespace) -> str:
    """What an aborted command left behind that can be trusted (its run folder's newest checkpoint)."""
    from gancore.checkpoint import latest_checkpoint

    folder = getattr(args, "out", None) or getattr(args, "run_dir", None)
    if folder is None or getattr(args, "func", None) not in (cmd_train, cmd_resume):
        return "nothing was written"
    folder = Path(folder)
    if (folder / "state.json").is_file():  # a checkpoint folder was given
        folder = folder.parent.parent
    latest = latest_checkpoint(folder)
    if latest is None:
        return f"no checkpoint of {folder} was written"
    return f"the newest complete checkpoint is {latest}; continue with: gancore resume {shlex.quote(str(folder))}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
