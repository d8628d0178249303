"""What a page reads about one corpus from the evaluated runs under a results root: its Table 1,
its claims, and the size of its test set. Reading only: nothing is trained or evaluated here
(the Table 1 and claims pages run the pipeline first)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdm import results
from sdm.results import RESULTS_ROOT


@dataclass(frozen=True, eq=False)
class CorpusResults:
    """Table 1 (build_table1), the claims report, and the test set's size, for one corpus."""

    data: str
    table: Any
    claims: Any
    n_utterances: int
    n_speakers: int
    n_runs: int


def read_corpus(
    data: str,
    preprocessing: str = "clean",
    root: Path = RESULTS_ROOT,
    seeds: Sequence[int] | None = None,
    judge: bool = True,
) -> CorpusResults | None:
    """The evaluated runs of one corpus (only `seeds`, when given); None when there are none."""
    from sdm import table1 as t1
    from sdm.judging import judge_claims

    metrics = {
        key: table
        for key, table in results.collect_metrics(root, data, preprocessing).items()
        if seeds is None or key[1] in seeds
    }
    if not metrics:
        return None
    oracle = results.read_oracle(root, data, preprocessing)
    any_table = next(iter(metrics.values()))
    return CorpusResults(
        data=data,
        table=t1.build_table1(metrics, oracle),
        claims=judge_claims(metrics) if judge else None,
        n_utterances=int(any_table["utterance"].nunique()),
        n_speakers=int(any_table["speaker"].nunique()),
        n_runs=len(metrics),
    )
