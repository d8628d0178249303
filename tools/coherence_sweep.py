"""Choose the coherence weight λ of the learned-dictionary variants (sdm.variants.COHERENCE_WEIGHT).

Trains, in one training call (one stack per shape, as `python -m sdm train` trains several
variants), seed 0 of sdm-learned-k64-m64-coh and sdm-learned-k128-m64-coh at each λ of the grid,
beside their λ = 0 baseline (sdm-learned-k64-m64, sdm-learned-k128-m64) at --baseline-seeds; then
writes a summary per run (best validation loss without the penalty, coherence of the saved D,
epochs) and prints the λ the rule chooses:

    the largest λ of the grid whose best validation loss (negative ELBO per frame, penalty left
    out) is, for both k = 64 and k = 128, at most that of the λ = 0 run of the same seed (0:
    same initial weights, same noise) plus max(1 nat/frame, 2 × the seed-to-seed SD of the λ = 0
    runs' best validation losses; the SD only with 2 baseline seeds or more).

Runs go to <out>/lambda-<λ>/<data>/<preprocessing>/<variant>/seed-<s>/ (ignored by git), the
summary to <out>/<data>/<preprocessing>/coherence_sweep.{csv,md} (committed). Finished runs are
reused; an interrupted sweep resumes where it stopped (the same command).

Usage:
    python tools/coherence_sweep.py [--data shipped] [--lambdas 0.1 1 10 100]
        [--baseline-seeds 0 1 2] [--max-epochs N] [--patience N] [--out results-sweep]
        [--workers auto] [--device auto] [--no-train]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from sdm import sweep
from sdm.config import TrainConfig
from sdm.guards import Interrupted


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="shipped", help="shipped (default), medium, or a PATH")
    ap.add_argument("--preprocessing", default="clean", choices=("clean", "official"))
    ap.add_argument("--lambdas", type=float, nargs="+", default=list(sweep.DEFAULT_WEIGHTS))
    ap.add_argument("--baseline-seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--max-epochs", type=int, default=None, help="default: the paper's setting")
    ap.add_argument("--patience", type=int, default=None, help="validations without improvement")
    ap.add_argument("--out", default=str(sweep.SWEEP_ROOT), help="default: results-sweep/")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", default="auto", help="training processes on a CPU (or auto)")
    ap.add_argument("--no-train", action="store_true", help="summarise what is trained only")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    defaults = TrainConfig()
    try:
        train = TrainConfig(
            max_epochs=defaults.max_epochs if args.max_epochs is None else args.max_epochs,
            patience=defaults.patience if args.patience is None else args.patience,
        )
        workers = args.workers if args.workers == "auto" else int(args.workers)
        out = Path(args.out)
        runs = sweep.plan(
            args.lambdas, args.data, args.preprocessing, train, out, args.baseline_seeds
        )
        if not args.no_train:
            sweep.train(runs, out, args.device, workers, progress=not args.quiet)
        table = sweep.summarise(runs)
        chosen = sweep.choose_weight(table, args.lambdas)
        print(sweep.write_summary(table, chosen, args.lambdas, out, args.data, args.preprocessing))
    except Interrupted as stop:
        print(f"coherence_sweep: {stop}", file=sys.stderr)
        return 128 + stop.signum
    except (ValueError, KeyError, FileNotFoundError) as err:
        print(f"coherence_sweep: error: {err}", file=sys.stderr)
        return 2
    print(f"chosen λ: {'none' if chosen is None else f'{chosen:g}'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
