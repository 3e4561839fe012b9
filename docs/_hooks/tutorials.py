"""MkDocs hook: publishes files that live outside `docs/` in the site.

- The notebooks live beside their paired `.py` files in `tutorials/`. Each
  `tutorials/*.ipynb` is added to the files of the build as
  `tutorials/<name>.ipynb` (nav entries and links use that path), before
  mkdocs-jupyter turns notebooks into pages.
- `docs/benchmarks.md` includes `benchmarks/RESULTS.md`, whose images sit beside
  it in `benchmarks/`; they are added at the top of the site, where the relative
  links of the included text point.

Nothing is copied or linked on disk.
"""

from pathlib import Path

import mkdocs.plugins
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = ROOT / "tutorials"
BENCHMARKS = ROOT / "benchmarks"
_IMAGES = (".png", ".svg", ".jpg", ".jpeg", ".gif")


@mkdocs.plugins.event_priority(100)  # before mkdocs-jupyter wraps the notebooks
def on_files(files, config):
    def add(path, src_dir):
        files.append(
            File(
                path,
                src_dir=str(src_dir),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )

    for notebook in sorted(TUTORIALS.glob("*.ipynb")):
        add(f"tutorials/{notebook.name}", ROOT)
    for image in sorted(BENCHMARKS.glob("*")):
        if image.suffix.lower() in _IMAGES:
            add(image.name, BENCHMARKS)
    return files


def on_serve(server, config, builder):
    server.watch(str(TUTORIALS))
    server.watch(str(BENCHMARKS))
    return server
