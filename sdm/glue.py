"""Hand a notebook's figures and tables to the book's numbered, captioned MyST figures.

A cell calls `glue.figure("key", fig)` (tagged `remove-output` in the notebook, so the book shows
the figure once); a Markdown cell then places it with a caption:

    ```{glue:figure} key
    :name: fig-key
    :alt: what it shows

    Caption.
    ```

The figure is also shown in the cell's output, for whoever runs the notebook in Jupyter.
"""

from __future__ import annotations

from typing import Any


def figure(key: str, fig: Any) -> None:
    """Glue a matplotlib Figure as a PNG of the book's resolution (sdm.plotting.DPI)."""
    from IPython.display import Image
    from myst_nb import glue as _glue

    from sdm.plotting import to_png

    _glue(key, Image(data=to_png(fig)), display=True)


def html(key: str, markup: str) -> None:
    """Glue an HTML fragment (a grid of players and images) for a {glue:figure}."""
    from IPython.display import HTML
    from myst_nb import glue as _glue

    _glue(key, HTML(markup), display=True)
