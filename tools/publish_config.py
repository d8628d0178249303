"""Write the Jupyter Book configuration of the published build (GitHub Pages).

Local builds use _config.yml as it is: offline, no repository or launch buttons. The published
build adds, from the repository the workflow runs in:

- the repository URL and branch (`github.server_url`, `github.repository`, `github.ref_name`);
- the repository and issue buttons;
- the Binder launch button (Binder builds environment.yml, then postBuild installs the package).
  No Colab button: Colab would run the notebooks without the `sdm` package installed.

Jupyter Book 1.x has no single-key override, so this writes a full copy of _config.yml with those
keys changed, for `jupyter-book build book/ --config PATH`.

Usage: python tools/publish_config.py --server-url URL --repository OWNER/NAME [--branch B] --out P
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "_config.yml"
BINDER = "https://mybinder.org"
_REPOSITORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+$")
_SERVER = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d+)?(/[\w./-]*)?$")


def published(base: dict[str, Any], server_url: str, repository: str, branch: str) -> dict:
    """The base configuration with the published build's repository, buttons and Binder set."""
    if not _SERVER.match(server_url):
        raise ValueError(f"--server-url: expected an http(s) URL, got {server_url!r}")
    if not _REPOSITORY.match(repository):
        raise ValueError(f"--repository: expected OWNER/NAME, got {repository!r}")
    if not branch or any(c.isspace() for c in branch):
        raise ValueError(f"--branch: expected a branch name, got {branch!r}")
    config = copy.deepcopy(base)
    config.setdefault("repository", {}).update(
        {"url": f"{server_url.rstrip('/')}/{repository}", "branch": branch}
    )
    config.setdefault("html", {}).update({"use_repository_button": True, "use_issues_button": True})
    config.setdefault("launch_buttons", {}).update(
        {"binderhub_url": BINDER, "colab_url": "", "notebook_interface": "classic"}
    )
    return config


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server-url", required=True, help="github.server_url")
    ap.add_argument("--repository", required=True, help="github.repository: OWNER/NAME")
    ap.add_argument("--branch", default="main", help="the branch the pages are built from")
    ap.add_argument("--base", type=Path, default=BASE, help="the local configuration")
    ap.add_argument("--out", type=Path, required=True, help="where to write the configuration")
    args = ap.parse_args(argv)
    if not args.base.is_file():
        print(f"error: {args.base}: no such configuration file", file=sys.stderr)
        return 2
    base = yaml.safe_load(args.base.read_text(encoding="utf-8"))
    try:
        config = published(base, args.server_url, args.repository, args.branch)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Written by tools/publish_config.py from {args.base.name} for the published build of "
        f"{config['repository']['url']}; edit {args.base.name}, not this file.\n"
    )
    text = header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=100)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({config['repository']['url']}, branch {args.branch})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
