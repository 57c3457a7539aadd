"""The ``musicvae`` command.

    musicvae sweep FILE [--dry-run]     run (or just validate and print) a sweep
    musicvae data synth --out DIR       write the demo collection
    musicvae extract FILE               extract the sweep's features into the store, nothing else
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from musicvae.config import SweepFileError, load_sweep


def _sweep(args: argparse.Namespace) -> int:
    cfg = load_sweep(args.file)
    from musicvae.sweep import describe_plan, run_sweep

    print(describe_plan(cfg), flush=True)
    if args.dry_run:
        print("\nDry run: the sweep file is valid; nothing was run.")
        return 0
    outcome = run_sweep(cfg, Path(args.file).read_text())
    return 0 if (outcome.leaderboard["status"] == "OK").any() else 1


def _synth(args: argparse.Namespace) -> int:
    from musicvae.synth import synthesize_collection

    metadata = synthesize_collection(args.out, per_genre=args.per_genre, seed=args.seed, clip_seconds=args.seconds)
    counts = metadata["label"].value_counts().sort_index()
    print(f"Wrote {len(metadata)} clips to {args.out} ({', '.join(f'{g} {n}' for g, n in counts.items())})")
    print(f"Metadata: {Path(args.out) / 'metadata.csv'}")
    return 0


def _extract(args: argparse.Namespace) -> int:
    import ray

    from musicvae.dataset import load_feature_set

    cfg = load_sweep(args.file)
    ray.init(include_dashboard=False)
    try:
        data = load_feature_set(cfg.data)
    finally:
        ray.shutdown()
    print(data.summary)
    print(f"{len(data.track_ids)} tracks x {data.features.shape[1]} features; labels: {data.label_names or 'none'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="musicvae", description="Hyperparameter sweeps for music clustering with VAEs.")
    commands = parser.add_subparsers(dest="command", required=True)

    sweep = commands.add_parser("sweep", help="run a sweep file")
    sweep.add_argument("file", help="sweep YAML, e.g. sweeps/quickstart.yaml")
    sweep.add_argument("--dry-run", action="store_true", help="validate the file and print the plan; run nothing")
    sweep.set_defaults(func=_sweep)

    data = commands.add_parser("data", help="demo data").add_subparsers(dest="data_command", required=True)
    synth = data.add_parser("synth", help="write the labelled synthetic demo collection")
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--per-genre", type=int, default=60, help="clips per genre (default 60; 6 genres)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--seconds", type=float, default=5.0, help="clip length (default 5 s)")
    synth.set_defaults(func=_synth)

    extract = commands.add_parser("extract", help="extract a sweep's features into the feature store")
    extract.add_argument("file", help="sweep YAML whose data section to extract")
    extract.set_defaults(func=_extract)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SweepFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
