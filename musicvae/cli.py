"""The ``musicvae`` command.

    musicvae sweep FILE [--dry-run]     run (or just validate and print) a sweep
    musicvae sweep --resume NAME        continue an interrupted sweep (Tune state, Optuna study, MLflow parent run)
    musicvae sync NAME                  re-log to MLflow what the sweep's Tune state holds and MLflow lacks
    musicvae data synth --out DIR       write the demo collection
    musicvae extract FILE               extract the sweep's features into the store, nothing else
    musicvae report NAME [NAME ...]     a finished sweep's tables and figures, from MLflow, into reports/<NAME>/
    musicvae report NAME --figures RUN [RUN ...]
                                        first draw the UMAP/t-SNE figure of these trials (run ids or trial names)
                                        into their own MLflow runs, then report
    musicvae assign MODEL_URI SOURCE --out DIR
                                        label every track of a collection with a fitted pipeline (models:/<sweep>@champion)
    musicvae tracking-server            MLflow on PostgreSQL with proxied artifacts, on loopback, for a team

Every command takes ``-v/--verbose``: the libraries' own output (Tune's trial
tables, Ray's and Ray Data's log lines) instead of musicvae's progress bars.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

import yaml

from musicvae.config.params import K_CLUSTERERS, NEURAL_MODELS, TrialParams, choices, describe_space
from musicvae.config.sections import TrackingConfig, TrialsConfig
from musicvae.config.sweep_file import SweepConfig, SweepFileError, load_sweep, parse_sweep
from musicvae.console import quiet_libraries, set_verbose
from musicvae.data import locations

DEFAULT_STORAGE = SweepConfig.model_fields["storage_path"].default


def after_sweep_figures(trials: TrialsConfig) -> str:
    """The plan's words for the projections drawn once the trials are done (musicvae.reporting.trial_projection)."""
    if trials.per_trial_projections:
        return "the β grid, from the projections every trial draws"
    if trials.after_sweep_projections:
        return (
            "UMAP and t-SNE of the selected method's trial and the oracle's (with labels), into their runs, and the β grid "
            "(a UMAP per model and β); any other trial's on demand: musicvae report NAME --figures RUN"
        )
    return "no projection (trials.after_sweep_projections: false); any trial's on demand: musicvae report NAME --figures RUN"


def shared_training(cfg: SweepConfig) -> str:
    """The plan's line on trained models: how many a grid trains (trials that only cluster differently share one), and which seeds train together."""
    if locations.is_uri(cfg.data.cache_dir):
        return "each trial trains its own model (trained models are shared through a local cache_dir; this one is remote)"
    rule = "trials that differ only in how they cluster share one trained model (musicvae.training.trained_models)"
    points = [{**{k: v for k, v in cfg.space.items() if not isinstance(v, list)}, **p} for p in cfg.fixed_points]
    neural = [p for p in points if p.get("model", "vae") in NEURAL_MODELS]
    if cfg.search.sampler != "grid" or not neural:
        return rule
    from musicvae.training.replicas import vectorises_params  # torch: only for a plan that trains
    from musicvae.training.trained_models import training_params

    def training(point: dict, *leave_out: str) -> str:  # what the store keys a training by (musicvae.training.trained_models)
        kept = {k: v for k, v in training_params(TrialParams(**point)).items() if k not in leave_out}
        return json.dumps(kept, sort_keys=True, default=str)

    distinct = {training(p): p for p in neural}
    seeds: dict[str, list] = {}
    for point in distinct.values():
        seeds.setdefault(training(point, "seed"), []).append(point)
    groups = [group for group in seeds.values() if len(group) > 1]
    together = [group for group in groups if vectorises_params(TrialParams(**group[0])) and cfg.trials.replicas]
    alone = sorted({p.get("model", "vae") for group in groups if not vectorises_params(TrialParams(**group[0])) for p in group})
    line = f"{len(distinct)} models for {len(neural)} neural trials: {rule}"
    if together:
        sizes = sorted({len(group) for group in together})
        models = sorted({p.get("model", "vae") for group in together for p in group})
        line += (
            f"; each model's seeds trained together as one vectorised model (musicvae.training.replicas): {len(together)} group(s) of "
            f"{'/'.join(map(str, sizes))} seeds ({', '.join(models)}) where each linear layer is large enough to vectorise exactly"
        )
    if alone:
        line += f"; one seed at a time: {', '.join(alone)} (a vectorised convolution is slower on the CPU and rounds differently)"
    if not cfg.trials.replicas:
        line += "; each seed's trial trains its own (trials.replicas: false)"
    return line


def k_plan(cfg: SweepConfig) -> list[str]:
    """How the sweep gets its k: the file's, or searched (as :func:`musicvae.tune.sweep.with_k` will do once the tracks are counted)."""
    if "n_clusters" in cfg.space or not any(c in K_CLUSTERERS for c in choices(cfg.space, "clusterer")):
        return []
    values = "the grid 2-10, 12, 14, 16, 20 up to" if cfg.search.sampler == "grid" else "every integer from 2 to"
    return [
        f"  n_clusters  searched: {values} sqrt(n/2) (at most 20; n, the tracks, is counted once the data is read), a grid's trials times "
        "the k values; the labels, where there are any, are shown beside the chosen k for evaluation only"
    ]


def describe_plan(cfg: SweepConfig) -> str:
    """What ``--dry-run`` prints: everything the sweep would do, nothing run."""
    source = cfg.data.source
    source_args = ", ".join(f"{k}={v}" for k, v in source.model_dump(exclude={"kind"}).items() if v is not None)
    audio = cfg.data.audio
    search = cfg.search
    label_note = "uses labels: oracle selection" if search.uses_labels else "label-free"
    lines = [
        f"Sweep '{cfg.name}'" + (f": {cfg.description}" if cfg.description else ""),
        f"Data: {source.kind} ({source_args}); features standardised: {'yes' if cfg.data.standardize else 'no'}",
    ]
    if source.kind not in ("table", "fma_features"):
        lines.append(
            f"Features: {', '.join(audio.features)}; MFCC {audio.stats} of {audio.n_mfcc} coefficients, {audio.duration or 'whole'} s "
            f"from {audio.offset} s at {audio.sample_rate} Hz (Ray Data), cache {cfg.data.cache_dir}"
        )
        if "musicnn" in audio.features:
            nn = audio.musicnn
            lines.append(
                f"musicnn (pretrained, weights from the musicnn package): {', '.join(nn.models)}; {nn.layer} of each 3 s patch at 16 kHz, "
                f"{nn.stats} over a clip's patches; inputs {', '.join(nn.inputs)}" + ("" if "input" in cfg.space else " (space.input picks one: mfcc now)")
            )
    if cfg.data.text is not None:
        lines.append(f"Text: {cfg.data.text.method} embeddings of {', '.join(cfg.data.text.columns)}" + (" + lyrics" if cfg.data.text.lyrics else ""))
    if cfg.data.group_by:
        lines.append(f"Metadata groups: embeddings pooled by {' + '.join(cfg.data.group_by)} before clustering (metadata, not labels)")
    trials = cfg.trials
    lines += [
        "Search space (Optuna define-by-run):",
        *describe_space(cfg.space),
        *k_plan(cfg),
        f"Search: OptunaSearch, {search.sampler} sampler, seed {search.seed}; "
        + ("objectives " if search.multi_objective else "objective ")
        + ", ".join(f"{m} ({mode})" for m, mode in zip(search.metrics, search.modes))
        + f", {label_note}"
        + (f"; {len(search.points_to_evaluate)} fixed point(s) first" if search.points_to_evaluate else ""),
        "Early stopping: "
        + (
            f"ASHA on {cfg.scheduler.metric} per epoch (grace {cfg.scheduler.grace_period} epochs, keep 1/{cfg.scheduler.reduction_factor:g} per rung)"
            if cfg.scheduler.kind == "asha"
            else "off (every trial runs to the end)"
        ),
        f"Selection: the '{cfg.selection.rule}' rule (label-free), every clustering scored in the inputs and each distinct embedding "
        f"on {cfg.selection.sample} seeded rows (methods less stable than {cfg.selection.candidate_stability:g} rank last); "
        f"a winner less stable than {cfg.selection.min_stability:g} is reported as no stable clustering",
        f"Budget: {cfg.num_samples} trials, at most {search.max_concurrent_trials} at a time"
        + (f", {search.time_budget_s:g} s in all" if search.time_budget_s else "")
        + f"; per trial {cfg.resources.cpus_per_trial:g} CPU, {cfg.resources.gpus_per_trial:g} GPU (device {cfg.resources.device})",
        f"Training: {shared_training(cfg)}",
        f"Per trial: figures {', '.join(trials.figures) or 'none'}{'' if trials.per_trial_projections else ' (no UMAP/t-SNE)'}; "
        f"checkpoint every {trials.checkpoint_every} epochs; {trials.max_retries} restart(s) if its worker dies",
        f"After the trials: the metrics heatmap; {after_sweep_figures(trials)}",
        f"Tracking: {cfg.tracking.resolved_uri()} (experiment '{cfg.tracking.experiment}'); Ray results: {locations.storage_root(cfg.storage_path)}",
    ]
    return "\n".join(lines)


def _sweep(args: argparse.Namespace) -> int:
    from musicvae.data.locations import find_run, load_run_sweep
    from musicvae.evaluation.leaderboard import TrialStatus
    from musicvae.tune.sweep import run_sweep

    if args.file is None and args.resume is None:
        raise SweepFileError("give a sweep file, or --resume NAME to continue an interrupted sweep")
    run_path = None
    if args.file is not None:
        cfg = load_sweep(args.file)
        sweep_yaml = Path(args.file).read_text()
    if args.resume is not None:
        if not args.resume and args.file is None:
            raise SweepFileError("--resume needs a NAME (a sweep name or run folder) when no sweep file is given")
        name = args.resume or cfg.name  # FILE --resume: this sweep file's latest run
        storage = args.storage or (cfg.storage_path if args.file is not None else DEFAULT_STORAGE)
        run_path = find_run(storage, name)
        if args.file is None:
            sweep_yaml = load_run_sweep(run_path)
            cfg = parse_sweep(yaml.safe_load(sweep_yaml), origin=f"{run_path}/sweep file")
        print(f"Resuming {run_path}", flush=True)

    print(describe_plan(cfg), flush=True)
    if args.dry_run:
        print("\nDry run: the sweep file is valid; nothing was run.")
        return 0
    outcome = run_sweep(cfg, sweep_yaml, resume=run_path, address=args.address)
    print(outcome.summary())
    return 0 if (outcome.leaderboard["status"] == TrialStatus.OK).any() else 1


def _assign(args: argparse.Namespace) -> int:
    import mlflow

    from musicvae.serving.assign import assign

    mlflow.set_tracking_uri(args.tracking_uri or TrackingConfig().resolved_uri())
    report = assign(args.model, args.source, args.out, address=args.address, embedding=args.embedding)
    print(report.summary())
    return 0


def _sync(args: argparse.Namespace) -> int:
    from musicvae.data.locations import find_run
    from musicvae.tune.sweep import sync_run

    run_path = find_run(args.storage, args.name)
    counts = sync_run(run_path)
    print(f"Synced {run_path} to MLflow: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    return 0


def _synth(args: argparse.Namespace) -> int:
    from musicvae.data.synth import synthesize_collection

    metadata = synthesize_collection(args.out, per_genre=args.per_genre, seed=args.seed, clip_seconds=args.seconds)
    counts = metadata["label"].value_counts().sort_index()
    print(f"Wrote {len(metadata)} clips to {args.out} ({', '.join(f'{g} {n}' for g, n in counts.items())})")
    print(f"Metadata: {Path(args.out) / 'metadata.csv'}")
    return 0


def _extract(args: argparse.Namespace) -> int:
    import ray

    from musicvae.data.dataset import load_feature_set
    from musicvae.ray_session import init_ray

    cfg = load_sweep(args.file)
    started = init_ray(args.address)  # None: $RAY_ADDRESS, else a local Ray
    try:
        data = load_feature_set(cfg.data)
    finally:
        if started:
            ray.shutdown()
    print(data.summary)
    sizes = ", ".join(f"{name} {values.shape[1]}" for name, values in data.inputs.items())
    print(f"{len(data.track_ids)} tracks x features ({sizes}); labels: {data.label_names or 'none'}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from musicvae.reporting.report import write_report

    uri = TrackingConfig(uri=args.tracking_uri).resolved_uri()
    written = write_report(uri, args.experiment, args.names, Path(args.out), run_id=args.run_id, figures=args.figures)
    if args.figures:
        print(f"Logged figures/projection.png and projection.parquet into the MLflow run of {', '.join(dict.fromkeys(args.figures))}.")
    print("\n".join(f"Wrote {path}" for path in written))
    print(f"Logged each sweep's files on its MLflow parent run under report/ (experiment '{args.experiment}').")
    return 0


def _tracking_server(args: argparse.Namespace) -> int:
    from musicvae.tracking.server import serve

    return serve(Path(args.data), args.host, args.port, args.postgres_port, args.backend_store_uri, args.artifacts_destination)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", help="leave Ray's, Tune's and the other libraries' own output on (Tune's trial tables); default: a progress bar"
    )
    parser = argparse.ArgumentParser(prog="musicvae", description="Hyperparameter sweeps for music clustering with VAEs.")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (_add_sweep_commands, _add_data_commands, _add_result_commands, _add_server_command):
        add(commands, common)
    return parser


def _add_sweep_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``sweep`` and ``sync``."""
    sweep = commands.add_parser("sweep", parents=[common], help="run a sweep file")
    sweep.add_argument("file", nargs="?", help="sweep YAML, e.g. sweeps/quickstart.yaml")
    sweep.add_argument("--dry-run", action="store_true", help="validate the file and print the plan; run nothing")
    sweep.add_argument(
        "--resume",
        nargs="?",
        const="",
        metavar="NAME",
        help="continue an interrupted sweep: NAME is a sweep name (its latest run) or a run folder; with FILE, NAME may be left out",
    )
    sweep.add_argument("--storage", help=f"where to look for the run to resume (default: the sweep file's storage_path, else {DEFAULT_STORAGE})")
    sweep.add_argument("--address", help="join this Ray cluster (default: $RAY_ADDRESS, else start a local Ray)")
    sweep.set_defaults(func=_sweep)

    sync = commands.add_parser(
        "sync", parents=[common], help="re-log to MLflow what a sweep's Tune results hold and MLflow lacks (after a long tracking outage)"
    )
    sync.add_argument("name", metavar="NAME", help="a sweep name (its latest run) or a run folder")
    sync.add_argument("--storage", default=DEFAULT_STORAGE, help=f"the sweeps' storage_path (default {DEFAULT_STORAGE})")
    sync.set_defaults(func=_sync)


def _add_data_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``data synth`` and ``extract``."""
    data = commands.add_parser("data", parents=[common], help="demo data").add_subparsers(dest="data_command", required=True)
    synth = data.add_parser("synth", parents=[common], help="write the labelled synthetic demo collection")
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--per-genre", type=int, default=60, help="clips per genre (default 60; 6 genres)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--seconds", type=float, default=5.0, help="clip length (default 5 s)")
    synth.set_defaults(func=_synth)

    extract = commands.add_parser("extract", parents=[common], help="extract a sweep's features into the feature store")
    extract.add_argument("file", help="sweep YAML whose data section to extract")
    extract.add_argument("--address", help="join this Ray cluster (default: $RAY_ADDRESS, else start a local Ray)")
    extract.set_defaults(func=_extract)


def _add_result_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``report`` and ``assign``: what a finished sweep gives."""
    report = commands.add_parser("report", parents=[common], help="write a finished sweep's tables and figures from MLflow")
    report.add_argument("names", nargs="+", metavar="NAME", help="sweep name(s), e.g. fma-easy fma-medium fma-hard")
    report.add_argument("--out", default="reports", help="output folder; each sweep goes to OUT/NAME/ (default reports)")
    report.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    experiment = TrackingConfig.model_fields["experiment"].default
    report.add_argument("--experiment", default=experiment, help=f"MLflow experiment (default {experiment})")
    report.add_argument("--run-id", help="the parent run to report (default: the sweep's latest); one NAME only")
    report.add_argument(
        "--figures",
        nargs="+",
        metavar="RUN",
        help="first draw the UMAP/t-SNE projection figure of these trials (MLflow run ids, or trial names as in trials.csv) into their own runs "
        "(a sweep draws it only for the selected and the oracle trial, unless trials.figures lists umap/tsne)",
    )
    report.set_defaults(func=_report)

    assign = commands.add_parser("assign", parents=[common], help="label a whole collection with a fitted pipeline (e.g. a sweep's champion)")
    assign.add_argument("model", metavar="MODEL_URI", help="models:/<sweep>@champion, runs:/<run id>/pipeline, or a pipeline's folder")
    assign.add_argument("source", metavar="SOURCE", help="a folder of audio, a CSV manifest (a path column), a feature table, or a sweep file")
    assign.add_argument("--out", required=True, help="output folder: assignments.csv/.parquet, playlists/, summary.md, skipped.csv")
    assign.add_argument("--tracking-uri", help="MLflow tracking URI for models:/ and runs:/ (default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    assign.add_argument("--address", help="join this Ray cluster (default: $RAY_ADDRESS, else start a local Ray)")
    assign.add_argument("--embedding", action="store_true", help="add each track's embedding (z00, z01, ...) to the assignments")
    assign.set_defaults(func=_assign)


def _add_server_command(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``tracking-server``."""
    server = commands.add_parser("tracking-server", parents=[common], help="run MLflow on PostgreSQL with proxied artifacts (loopback only)")
    server.add_argument("--data", default=".musicvae/tracking", help="folder for PostgreSQL's files and the artifacts (default .musicvae/tracking)")
    server.add_argument("--host", default="127.0.0.1", help="bind address (default loopback; reach it through an SSH tunnel)")
    server.add_argument("--port", type=int, default=5000)
    server.add_argument("--postgres-port", type=int, default=5433, help="the local PostgreSQL's port (loopback)")
    server.add_argument("--backend-store-uri", help="an existing database instead of the local PostgreSQL, e.g. postgresql://user@db:5432/mlflow")
    server.add_argument("--artifacts-destination", help="default DATA/artifacts; on a cluster e.g. s3://bucket/mlflow")
    server.set_defaults(func=_tracking_server)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose:
        set_verbose(True)
    quiet_libraries()
    try:
        return args.func(args)
    except SweepFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as exc:
        if os.environ.get("MUSICVAE_DEBUG"):
            traceback.print_exc()
        print(f"error: {exc}" + ("" if os.environ.get("MUSICVAE_DEBUG") else " (MUSICVAE_DEBUG=1 shows where)"), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
