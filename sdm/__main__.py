"""`python -m sdm variants | train | evaluate | table1 | claims | book`: parses arguments, calls the
library.

Bad arguments end with one line on standard error and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any

from sdm.config import QUICK, TrainConfig

DEFAULTS = TrainConfig()


def _train_config(args: argparse.Namespace) -> TrainConfig:
    base = QUICK if getattr(args, "quick", False) else DEFAULTS
    return TrainConfig(
        lr=base.lr,
        batch_size=base.batch_size,
        max_epochs=args.max_epochs if args.max_epochs is not None else base.max_epochs,
        patience=args.patience if args.patience is not None else base.patience,
        val_every_steps=base.val_every_steps,
        checkpoint_seconds=args.checkpoint_seconds,
    )


def _workers(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer >= 1, got {text!r}")
    return value


SLURM_OPTIONS = {  # option -> JobSpec field, for --launcher slurm only
    "jobs": "jobs",
    "partition": "partition",
    "time": "time",
    "cpus_per_job": "cpus",
    "gpus_per_job": "gpus",
    "mem": "mem",
    "account": "account",
    "slurm_config": None,
    "no_wait": None,
}


def _launcher(args: argparse.Namespace):
    """None (train here) or a cluster launcher; SLURM options without --launcher slurm are an
    error rather than silently ignored."""
    given = [k for k in SLURM_OPTIONS if getattr(args, k) not in (None, False)]
    if args.launcher == "local":
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise ValueError(f"{flag} is an option of --launcher slurm (the launcher is local)")
        return None
    if args.workers != "auto":
        raise ValueError(
            "--workers is for --launcher local; with slurm, --jobs and --cpus-per-job decide"
        )
    from sdm.cluster import Launcher
    from sdm.jobspec import job_spec

    options = {field: getattr(args, k) for k, field in SLURM_OPTIONS.items() if field}
    spec = job_spec(args.slurm_config, **options)
    return Launcher(spec, wait=not args.no_wait, progress=not args.quiet)


def _root(args: argparse.Namespace) -> Path:
    """The results root, checked before any work (a file or an unwritable folder fails now)."""
    from sdm.results import QUICK_ROOT, RESULTS_ROOT, check_output_root

    if args.out is not None:
        return check_output_root(Path(args.out))
    return QUICK_ROOT if getattr(args, "quick", False) else RESULTS_ROOT


def cmd_variants(args: argparse.Namespace) -> None:
    from sdm.variants import LEARNED_VARIANTS, VARIANTS

    print(f"{'name':<18} {'family':<7} {'m':>3} {'k':>4} {'alpha':>6} dictionary")
    for name, v in VARIANTS.items():
        k = "" if v.k is None else v.k
        alpha = "" if v.alpha is None else f"{v.alpha:g}"
        print(f"{name:<18} {v.family:<7} {v.m:>3} {k:>4} {alpha:>6} {v.dictionary or ''}")
    print()
    print("Beyond the paper (not in Table 1): D learned with the networks, coherence weight λ")
    print(f"{'name':<24} {'family':<7} {'m':>3} {'k':>4} {'λ':>6} dictionary")
    for name, v in LEARNED_VARIANTS.items():
        print(f"{name:<24} {v.family:<7} {v.m:>3} {v.k:>4} {v.coherence:>6g} {v.dictionary}")


def cmd_train(args: argparse.Namespace) -> None:
    from sdm.results import read_config
    from sdm.runs import make_specs
    from sdm.stacks import ensure_trained
    from sdm.variants import get_variant

    variants = [get_variant(v) for v in args.variant]
    specs = make_specs(variants, args.seed, args.data, args.preprocessing, _train_config(args))
    root = _root(args)
    trained = ensure_trained(
        specs,
        root,
        args.device,
        args.overwrite,
        not args.quiet,
        workers=args.workers,
        launcher=_launcher(args),
    )
    for run_dir in trained:
        result = read_config(run_dir)["result"]
        print(
            f"{run_dir}: best epoch {result['best_epoch']} of {result['epochs_run']}, "
            f"{result['elapsed_s']:.0f} s"
        )


def cmd_evaluate(args: argparse.Namespace) -> None:
    from sdm.audio import check_audio_suffix, write_audio
    from sdm.evaluate import evaluate_file
    from sdm.metrics import pesq_note
    from sdm.results import check_output_root
    from sdm.runs import load_runs

    if args.out is not None:  # a bad output path fails before the evaluation
        check_output_root(check_audio_suffix(args.out).parent)
    model = load_runs([Path(args.run)])
    (result,) = evaluate_file(model, args.audio, args.preprocessing)
    if args.out is not None:
        write_audio(args.out, result.estimate)
        print(f"wrote {args.out}")
    for name, value in result.metrics.items():
        print(f"{name} {value}")
    if note := pesq_note(len(result.estimate)):
        print(f"note: {note}")


def pipeline_options(args: argparse.Namespace) -> Any:
    """The sdm.pipeline.Options of `table1` and `claims`: which runs, where, how trained."""
    from sdm.pipeline import Options

    return Options(
        seeds=tuple(args.seeds),
        data=args.data,
        preprocessing=args.preprocessing,
        variants=None if args.variant is None else tuple(args.variant),
        train=_train_config(args),
        root=_root(args),
        report_only=args.no_train,
        device=args.device,
        workers=args.workers,
        quick=args.quick,
        progress=not args.quiet,
        launcher=_launcher(args),
    )


def cmd_table1(args: argparse.Namespace) -> None:
    from sdm import pipeline

    pipeline.table1(pipeline_options(args))


def cmd_claims(args: argparse.Namespace) -> None:
    from sdm import pipeline

    benchmarks = None if args.benchmarks is None else Path(args.benchmarks)
    pipeline.claims(pipeline_options(args), benchmarks)


def cmd_book(args: argparse.Namespace) -> None:
    from sdm.book import NOTEBOOKS, execute, get_profile

    unknown = [page for page in args.pages or () if page not in NOTEBOOKS]
    if unknown:
        raise ValueError(f"--pages: unknown {unknown}; expected some of {', '.join(NOTEBOOKS)}")
    profile = get_profile(args.profile)
    if args.seeds is not None:  # Table 1 and the claims over these seeds (make reproduce SEEDS=..)
        profile = dataclasses.replace(profile, claim_seeds=tuple(args.seeds))
    print(execute(profile) if args.pages is None else execute(profile, tuple(args.pages)))


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        default="shipped",
        help="shipped (default), medium, tcd-timit:PATH, or a folder PATH",
    )
    p.add_argument("--preprocessing", default="clean", choices=("clean", "official"))
    p.add_argument("--max-epochs", type=int, default=None)
    p.add_argument("--patience", type=int, default=None, help="validations without improvement")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    p.add_argument("--out", default=None, help="results root (default: results/)")
    p.add_argument(
        "--checkpoint-seconds",
        type=float,
        default=DEFAULTS.checkpoint_seconds,
        help="write the resume checkpoint at most this often (0: every epoch)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--workers",
        type=_workers,
        default="auto",
        help="training processes on a CPU, sharing the torch threads (default auto: one per "
        "thread); two commands side by side: OMP_NUM_THREADS=1 each",
    )
    _launcher_options(p)


def _launcher_options(p: argparse.ArgumentParser) -> None:
    """Where training runs: here (local) or as SLURM jobs (README, "On a cluster")."""
    g = p.add_argument_group("cluster (with --launcher slurm)")
    g.add_argument("--launcher", choices=("local", "slurm"), default="local")
    g.add_argument("--jobs", type=_positive, default=None, help="jobs per stack (default 1)")
    g.add_argument("--partition", default=None, help="SLURM partition (default: the cluster's)")
    g.add_argument("--time", default=None, help="time limit per job (default 4:00:00)")
    g.add_argument("--cpus-per-job", type=_positive, default=None, help="torch threads per job")
    g.add_argument("--gpus-per-job", type=_count, default=None, help="GPUs per job (default 0)")
    g.add_argument("--mem", default=None, help="memory per job, such as 16G")
    g.add_argument("--account", default=None, help="SLURM account to charge")
    g.add_argument(
        "--slurm-config", default=None, help="TOML file of these options (options given win)"
    )
    g.add_argument(
        "--no-wait",
        action="store_true",
        help="submit and return; the same command later collects what finished",
    )


def _positive(text: str) -> int:
    return _integer(text, 1)


def _count(text: str) -> int:
    return _integer(text, 0)


def _integer(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low:
        raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
    return value


def _pipeline_options(p: argparse.ArgumentParser, default_seeds: list[int]) -> None:
    """The options of `table1` and `claims`, which read them through pipeline_options."""
    p.add_argument("--seeds", type=int, nargs="+", default=default_seeds)
    p.add_argument("--quick", action="store_true", help="a few epochs, into results-quick/")
    p.add_argument(
        "--no-train",
        action="store_true",
        help="report only: train nothing, evaluate trained runs that lack metrics, report those",
    )
    p.add_argument(
        "--variant",
        nargs="+",
        default=None,
        help="only these variants (default: the 14 of Table 1; learned ones only by name)",
    )
    _common(p)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m sdm", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "variants", help="list the 14 Table-1 variants and the learned-dictionary ones"
    ).set_defaults(func=cmd_variants)

    p = sub.add_parser("train", help="train (or resume, or reuse) runs")
    p.add_argument("--variant", nargs="+", required=True, help="variant name(s): see `variants`")
    p.add_argument("--seed", type=int, nargs="+", default=[0])
    p.add_argument("--overwrite", action="store_true", help="replace finished runs")
    _common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="resynthesise one file with a trained run and score it")
    p.add_argument("--run", required=True, help="a run folder holding config.json and model.pt")
    p.add_argument("--audio", required=True, help="an audio file any sample rate or channel count")
    p.add_argument("--out", default=None, help="where to write the resynthesis (wav or flac)")
    p.add_argument("--preprocessing", default="clean", choices=("clean", "official"))
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("table1", help="train what is missing, evaluate, write Table 1")
    _pipeline_options(p, default_seeds=[0])
    p.set_defaults(func=cmd_table1)

    p = sub.add_parser("claims", help="train what is missing, judge the paper's claims C1-C10")
    _pipeline_options(p, default_seeds=[0, 1, 2, 3, 4])
    p.add_argument("--benchmarks", default=None, help="step-time JSON folder (benchmarks/results)")
    p.set_defaults(func=cmd_claims)

    p = sub.add_parser(
        "book", help="execute the book's notebooks for a profile (trains what is missing)"
    )
    p.add_argument("--profile", default="default", help="default, quick, medium or reproduce")
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="seeds of the Table 1 and claims pages (default: the profile's)",
    )
    p.add_argument(
        "--pages",
        nargs="+",
        default=None,
        help="execute only these notebooks, e.g. beyond (default: all, in reading order)",
    )
    p.set_defaults(func=cmd_book)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
        format="%(message)s",
    )
    from sdm.cluster import JobsFailedError, TrainingPending
    from sdm.guards import Interrupted
    from sdm.train import NonFiniteLossError

    try:
        args.func(args)
    except TrainingPending as pending:  # --no-wait: not an error
        print(pending)
        return 0
    except JobsFailedError as err:  # one line per failed job
        print(f"python -m sdm {args.command}: error: {err}", file=sys.stderr)
        return 1
    except Interrupted as stop:  # SIGTERM or Ctrl-C while training: saved, one line
        print(f"python -m sdm {args.command}: {stop}", file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:  # Ctrl-C anywhere else: nothing half-written (atomic writes)
        print(f"python -m sdm {args.command}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, KeyError, FileNotFoundError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"python -m sdm {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:  # not a bad argument: training diverged
        print(f"python -m sdm {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
