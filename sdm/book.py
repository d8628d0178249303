"""Book profiles and notebook execution: which results a book is rendered from, and where it goes.

The default profile renders the committed shipped-corpus results into book/ (its executed notebooks
are committed under book/generated/, so `jupyter-book build book/` works on a fresh clone without
training). Other profiles (quick, medium, reproduce) write their results, executed notebooks and
build into their own folders, and label every page they render.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdm.config import QUICK, TrainConfig
from sdm.nbclean import scrub_file
from sdm.results import QUICK_ROOT, RESULTS_ROOT, atomic_write, write_text

REPO_ROOT = Path(__file__).resolve().parent.parent
BOOK_DIR = REPO_ROOT / "book"
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
BUILD_ROOT = REPO_ROOT / ".build"
NOTEBOOKS = (
    "derive_gamma",
    "train",
    "table1",
    "sparsity",
    "spectrograms",
    "claims",
    "beyond",
    "performance",
    "index",
)
"""Executed in this order: later notebooks read what earlier ones trained and evaluated."""


@dataclass(frozen=True)
class Profile:
    """Everything that differs between renderings of the book."""

    name: str
    data: str
    train: TrainConfig
    results: Path
    label: str = ""  # shown on every page; empty only for the committed default book
    seeds: tuple[int, ...] = (0,)  # the trained models the sparsity and spectrogram pages load
    claim_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)  # Table 1 and the claims: metrics only
    report_only: bool = False  # Table 1 and the claims train nothing (a big corpus trains apart)

    @property
    def source(self) -> Path:
        """The book's source folder: book/ itself for the default profile, a copy otherwise."""
        return BOOK_DIR if self.name == "default" else BUILD_ROOT / self.name / "book"

    @property
    def generated(self) -> Path:
        return self.source / "generated"

    def notebook_parameters(self, name: str) -> dict[str, Any]:
        """Papermill parameters for one notebook under this profile."""
        common = {"data": self.data, "profile": self.name, "label": self.label}
        if name in ("derive_gamma", "performance"):
            return {"label": self.label}
        if name == "train":
            return {
                "data": self.data,
                "max_epochs": self.train.max_epochs,
                "patience": self.train.patience,
                "out": shown_path(self.results),  # relative: no machine path on the page
                "label": self.label,
            }
        if name in ("claims", "table1", "beyond", "index"):  # evaluated results: every seed
            return common | {"seeds": list(self.claim_seeds)}
        return common | {"seeds": list(self.seeds)}


PROFILES: dict[str, Profile] = {
    # claim_seeds: the seeds whose shipped runs are committed, so `make book` trains nothing new
    "default": Profile("default", "shipped", TrainConfig(), RESULTS_ROOT),
    "quick": Profile(
        "quick",
        "shipped",
        QUICK,
        QUICK_ROOT,
        label="Quick profile: every model trained for a few epochs only (a smoke test). "
        "These numbers say nothing about the paper.",
        claim_seeds=(0,),
    ),
    "medium": Profile(
        "medium",
        "medium",
        TrainConfig(),
        RESULTS_ROOT,
        label="Medium profile: results on the ~4-hour medium corpus (8 speakers, built from "
        "Debian packages), not the shipped 5-minute corpus.",
        claim_seeds=(0,),
        report_only=True,
    ),
    "reproduce": Profile(
        "reproduce",
        "shipped",
        TrainConfig(),
        REPO_ROOT / "results-reproduce",
        label="Reproduction: every model retrained from scratch by `make reproduce`.",
    ),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"profile: expected one of {', '.join(PROFILES)}, got {name!r}") from None


def _prepare_source(profile: Profile) -> None:
    """Copy the book's pages into the profile's own source folder, each labelled with a banner."""
    if profile.name == "default":
        return
    src = profile.source
    src.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO_ROOT / "_config.yml", src / "_config.yml")  # a copy, not the symlink
    shutil.copyfile(BOOK_DIR / "_toc.yml", src / "_toc.yml")
    shutil.copytree(BOOK_DIR / "_static", src / "_static", dirs_exist_ok=True)
    shutil.copyfile(REPO_ROOT / "CITATION.cff", src.parent / "CITATION.cff")  # cite.md includes it
    banner = f"```{{warning}}\n{profile.label}\n```\n\n"
    for page in BOOK_DIR.glob("*.md"):
        text = page.read_text()
        head, _, rest = text.partition("\n")  # keep the title first, the banner right under it
        write_text(src / page.name, f"{head}\n\n{banner}{rest}")


def _fold_parameter_cells(path: Path) -> None:
    """Fold the parameter cells on the rendered page (a click shows them): readers want results."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    # a page whose parameters cell is removed (the landing page) loses the injected one too
    hide = "hide-input"
    for cell in nb.cells:
        if "parameters" in cell.metadata.get("tags", []) and "remove-cell" in cell.metadata.tags:
            hide = "remove-cell"
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if {"parameters", "injected-parameters"} & set(tags) and hide not in tags:
            cell.metadata["tags"] = [*tags, hide]
    nbformat.write(nb, path)


def execute(profile: Profile | str = "default", notebooks: tuple[str, ...] = NOTEBOOKS) -> Path:
    """Run every notebook with papermill under a profile, writing into its generated/ folder.

    Each notebook trains or evaluates only what its profile's results tree lacks. Returns the
    profile's source folder, ready for `jupyter-book build`.
    """
    import papermill as pm

    profile = get_profile(profile) if isinstance(profile, str) else profile
    # kernels inherit the environment: a script-wide MPLBACKEND=Agg (as CI sets) would keep every
    # figure out of the executed notebooks, so the kernels get the inline backend explicitly
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    _prepare_source(profile)
    profile.generated.mkdir(parents=True, exist_ok=True)
    for name in notebooks:
        src = NOTEBOOK_DIR / f"{name}.ipynb"
        out = profile.generated / f"{name}.ipynb"
        print(f"executing {src.relative_to(REPO_ROOT)} -> {out}", flush=True)

        def run(tmp: Path, src: Path = src, name: str = name) -> None:
            pm.execute_notebook(
                str(src),
                str(tmp),
                parameters=profile.notebook_parameters(name),
                cwd=str(REPO_ROOT),
                kernel_name="python3",
                progress_bar=False,
            )
            _fold_parameter_cells(tmp)
            scrub_file(tmp)  # no timestamps, durations or paths: re-rendering leaves git clean

        atomic_write(out, run)
    return profile.source


def pipeline_options(profile: str, seeds: list[int], data: str, preprocessing: str) -> Any:
    """The sdm.pipeline.Options of the Table 1 and claims notebooks under a profile: its training
    settings, results root and report-only flag, quiet (the page shows the result)."""
    from sdm.pipeline import Options

    settings = get_profile(profile)
    return Options(
        seeds=tuple(seeds),
        data=data,
        preprocessing=preprocessing,
        train=settings.train,
        root=settings.results,
        report_only=settings.report_only,
        quick=profile == "quick",
        progress=False,
    )


def banner(label: str) -> Any:
    """A warning box that labels a page rendered from a non-default profile (nothing otherwise).

    HTML rather than a MyST directive: notebook outputs are rendered as CommonMark, without
    directives; the classes are the theme's own admonition styles."""
    from html import escape

    from IPython.display import HTML

    if not label:
        return None
    return HTML(
        '<div class="admonition warning"><p class="admonition-title">Profile</p>'
        f"<p>{escape(label)}</p></div>"
    )


TRAIN_DEFAULTS = {"k": 64, "alpha": 0.5}
"""The train notebook's defaults of parameters some families ignore (a test keeps them equal)."""


def shown_path(path: str | Path) -> str:
    """A path as a page may show it: relative to the repository when inside it (papermill runs the
    notebooks there), else as given."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def train_parameters(
    model: str,
    m: int,
    k: int,
    alpha: float,
    seed: int,
    data: str,
    preprocessing: str,
    max_epochs: int,
    patience: int,
    out: str,
    device: str = "auto",
) -> tuple[Any, Path]:
    """Turn the train notebook's parameters into a RunSpec and a results root, once.

    A parameter the chosen model does not use is ignored with a one-line notice; an impossible value
    (device included, although the spec does not hold it) raises ValueError naming the parameter.
    """
    from sdm.data import resolve_corpus
    from sdm.models import check_seed
    from sdm.runs import make_specs
    from sdm.train import pick_device
    from sdm.variants import variant_from_parameters

    unused = {"vae": ("k", "alpha"), "vsc": ("k",), "sdm": ("alpha",)}.get(model, ())
    given = {"k": k, "alpha": alpha}
    for name in unused:  # only what the user set: the notebook's defaults are not a choice
        if given[name] != TRAIN_DEFAULTS[name]:
            print(f"note: parameter {name!r} is not used by model {model!r}; ignored")
    check_seed(seed)
    if not isinstance(k, int) or k < 0:
        raise ValueError(
            f"k: expected 0 (identity dictionary) or a positive number of atoms, got {k!r}"
        )
    variant = variant_from_parameters(
        model, m, k=k if model == "sdm" else 0, alpha=alpha if model == "vsc" else None
    )
    resolve_corpus(data)  # a clear error now, not after the first cells
    pick_device(device)
    train = TrainConfig(max_epochs=max_epochs, patience=patience)
    (spec,) = make_specs([variant], [seed], data, preprocessing, train)
    root = Path(out) if out else RESULTS_ROOT
    return spec, root


def quiet_logs() -> None:
    """Keep the package's log records (reusing, resuming, starting a training) out of a page's
    output: the page reports what a reader needs itself, and a record may name a machine path."""
    import logging

    logger = logging.getLogger("sdm")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    logger.propagate = False
