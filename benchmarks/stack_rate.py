"""The live training rate of a stack, read from its resume checkpoint(s): what a long run really
achieves, to set beside the benchmark's figure for the same corpus.

    .venv/bin/python benchmarks/stack_rate.py CHECKPOINT_FOLDER [--frames N]

For every stack in the folder (one file, or one file per shard), per shard: the epoch reached, the
trainer's own clock (`elapsed`, which keeps running while a process is paused with SIGSTOP), the
member-epochs trained so far (each member's validation rows, one per validated epoch) and the
variant-frames per second they amount to. Shards run side by side, so the stack's rate is the sum.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch


def shard_rate(path: Path, frames: int | None) -> dict:
    st = torch.load(path, map_location="cpu", weights_only=False)
    histories = [m["history"] for m in st["member_states"]]
    rows = [r for h in histories for r in h]
    epochs, elapsed = int(st["epoch"]), float(st["elapsed"])
    if frames is None:  # validated every epoch on a big corpus: steps per epoch x batch size
        first = next((h[0] for h in histories if h), None)
        steps = int(first["step"] // first["epoch"]) if first else 0
        frames = steps * int(st["train_config"]["batch_size"])
    interval = 1
    if len(rows) and any(len(h) > 1 for h in histories):
        h = next(h for h in histories if len(h) > 1)
        interval = int(h[1]["epoch"] - h[0]["epoch"])
    member_epochs = len(rows) * interval
    active = sum(len(g["active"]) for g in st["groups"])
    return {
        "file": path.name,
        "members": len(histories),
        "active": active,
        "epoch": epochs,
        "elapsed_s": elapsed,
        "s_per_epoch": elapsed / epochs if epochs else float("nan"),
        "member_epochs": member_epochs,
        "variant_frames_per_s": member_epochs * frames / elapsed if elapsed else float("nan"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "folder", type=Path, help="a checkpoint folder (ckpt/, or under SDM_STATE_DIR)"
    )
    parser.add_argument("--frames", type=int, default=None, help="training frames per epoch")
    args = parser.parse_args(argv)
    files = sorted(args.folder.glob("stack-*.pt"))
    if not files:
        print(f"{args.folder}: no stack checkpoints here", file=sys.stderr)
        return 2
    stacks: dict[str, list[Path]] = {}
    for f in files:
        stacks.setdefault(f.name.split(".", 1)[0], []).append(f)
    for stem, shards in stacks.items():
        rates = [shard_rate(p, args.frames) for p in shards]
        total = sum(r["variant_frames_per_s"] for r in rates)
        print(
            f"{stem}: {sum(r['members'] for r in rates)} members, "
            f"{sum(r['active'] for r in rates)} active, {total:,.0f} variant-frames/s"
        )
        for r in rates:
            print(
                f"  {r['file']}: epoch {r['epoch']}, {r['elapsed_s']:,.0f} s "
                f"({r['s_per_epoch']:.0f} s/epoch), {r['members']} members "
                f"({r['active']} active), {r['member_epochs']} member-epochs, "
                f"{r['variant_frames_per_s']:,.0f} variant-frames/s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
