# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Performance
#
# Training the 14 Table-1 variants, with several seeds and early stopping, is what this companion
# spends its time on. `sdm.train.fit` trains any set of variants and seeds at once: members of
# equal shape share one stack of batched weights, every step runs all stacks and one backward
# pass, one fused Adam updates each stack, the frames stay on the device and the step never waits
# on the host. A member that stops early leaves its stack. On a CPU, `sdm.parallel` spreads the
# members over one single-threaded process per core (`--workers`, default `auto`); every member's
# weights are bitwise those of the one-process run (a test), because members never interact and
# each has its own random streams.
#
# Every number on this page is read from the benchmark files `benchmarks/results/*.json`, written
# by the scripts in `benchmarks/` (listed at the end); rerun them to measure your machine.

# %% tags=["parameters"]
label = ""

# %% tags=["hide-input"]
from IPython.display import Markdown

from sdm import book, perfpage

benchmarks = perfpage.load_benchmarks()
book.banner(label)

# %% [markdown]
# ## What is measured
#
# On the shipped corpus's training frames (batch 128, fp32), in one run:
#
# - **the reference**: a training loop written the way research code usually is (`nn.Linear`
#   layers, the batch sliced on the Python side, `.item()` every step, each batch moved to the
#   device, default Adam), training one variant at a time (VAE and SDM-VAE at m = 32 and 64);
# - **ours**: the trainer on all 14 variants at once, in *variant-frames per second*: frames each
#   variant trains on per second, summed over the variants trained together;
# - **the peak**: the fp32 matrix-product rate of `torch.mm` at the model's largest product,
#   128×513 · 513×128, measured in the same run. Multiplying a throughput by the GEMM work of one
#   frame (forward and backward) and dividing by the peak gives the fraction of the machine's
#   matrix rate that training uses.
#
# ## Results

# %% tags=["remove-input"]
Markdown(
    perfpage.sections(
        benchmarks, "ours", perfpage.training_table, "No benchmark results are committed yet."
    )
)

# %% [markdown]
# Why processes: the matrix products are small (128×513×128 per member and batch), and torch's
# threads synchronise at every kernel, elementwise ones included; with one thread per process
# nothing waits. The cost is a process start (a few seconds, once per training) and that early
# stopping can leave one core idle when one process's members stop before the other's. Members
# are dealt to processes balanced by their work (with several seeds, the seeds of a variant go to
# different processes).
#
# ## One product for the layers every variant shares
#
# Every variant's encoder starts with a 513 → 128 layer and every decoder ends with a 128 → 513
# one; the trainer runs them as one batched product per shape group (8 groups for the 14
# variants). Running each as one product over all of a process's members, whatever their shape
# group, gives bitwise the same step, so it could have been adopted without changing any result.
# `benchmarks/shared_layers.py` times the training step both ways on one core, in alternating
# rounds of short blocks:

# %% tags=["remove-input"]
Markdown(
    perfpage.sections(
        benchmarks,
        "cases",
        perfpage.shared_layers_table,
        "No shared-layer benchmark is committed yet.",
    )
)

# %% [markdown]
# On this CPU it does not pay, so the trainer keeps one product per group: a batched product on
# a CPU runs its matrices one after another, so one call over 14 members does the work of 8
# calls, and gathering the inputs (and, without a new parameter layout, the weights) into one
# tensor at every step costs about what the calls saved.
#
# ## The cost of the dictionary (claim C10)
#
# SDM-VAE's extra work per step is γ's closed-form update, the KL against it and one small product
# $\mathbf z = \mathbf D\mathbf a$. {doc}`claims` judges the claim with these numbers.

# %% tags=["remove-input"]
Markdown(
    "\n\n".join(
        f"**{name}.**\n\n{perfpage.c10_table(bench)}"
        for name, bench in benchmarks.items()
        if "c10_sdm_over_vae_step" in bench
    )
    + "\n\n"
    + perfpage.c10_estimator()
)

# %% [markdown]
# The run-to-run spread of a step time is of the same order as the difference, which is why the
# estimate comes with an interval.
#
# ## On a busy machine
#
# Threads matter more than anything else: with two threads per process competing with other
# processes, the same step runs several times slower than with one (OpenMP threads spin while
# they wait for each other); `OMP_WAIT_POLICY=PASSIVE` recovers most of that. `auto` follows
# torch's thread count, so `OMP_NUM_THREADS=1` gives one single-threaded process: what to use
# beside other work.
#
# ## Rerun
#
# ```bash
# .venv/bin/python benchmarks/train_speed.py                # about a minute on 2 idle cores
# .venv/bin/python benchmarks/train_speed.py --threads 1    # one thread, so one process
# .venv/bin/python benchmarks/train_speed.py --data medium  # the trainer alone, medium corpus
# .venv/bin/python benchmarks/eval_speed.py                 # evaluation: parallel scoring
# .venv/bin/python benchmarks/shared_layers.py              # one product for the shared layers
# ```
#
# Each run writes `benchmarks/results/<machine>.json` with the torch version, thread count, CPU or
# GPU name, date, command and the load average at start and end; a run started on a busy machine
# is flagged there and warns when it prints.
