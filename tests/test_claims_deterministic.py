"""The claims' bootstrap gives the same bits whichever BLAS kernel the CPU gets, so re-rendering
the book never rewrites the committed claims CSVs with last-digit noise."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import hashlib
import numpy as np
from sdm.stats import bootstrap
x = np.random.default_rng(0).normal(2.0, 0.5, size=(6, 5, 15))
est = bootstrap(x, lambda m: m[..., :3].max(-1) - m[..., 3:].max(-1))
data = np.array([est.estimate, est.ci_low, est.ci_high, est.df]).tobytes()
print(hashlib.sha256(data + est.replicates.tobytes()).hexdigest())
"""


def test_bootstrap_bits_do_not_depend_on_the_blas_kernel() -> None:
    # OpenBLAS picks its kernel for the CPU at run time; OPENBLAS_CORETYPE forces one. Before the
    # sums left BLAS, the SSE3 and AVX2 kernels gave different last digits.
    digests = set()
    for core in ("Prescott", "Haswell"):
        env = dict(os.environ, OPENBLAS_CORETYPE=core, OMP_NUM_THREADS="1")
        out = subprocess.run(
            [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
        )
        digests.add(out.stdout.strip())
    assert len(digests) == 1
