"""Every kind of HTML page the project writes, made on a tiny model, and a check that a page asks
nothing from outside (for the offline tests in ``test_html_offline.py`` and the browser one).

Writers covered: ``cbm eval --plots`` (concept AUC and intervention charts), ``cbm run``'s
``summary.html``, ``cbm report --sample`` (also the app's and ``cbm demo --cct``'s explanation
download) and ``cbm report --edit`` (also the app's edit report download).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
from experiment_files import synthetic_experiment

EXPERIMENT = synthetic_experiment("offline", n_concepts=6, n_samples=90, dim=12, max_iter=100,
                                  tables='\n[evaluation]\nsplits = ["test"]\n')

#: (tag, attribute) pairs that make a browser fetch something when the page opens
FETCHING = {("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src"), ("source", "src"),
            ("video", "src"), ("audio", "src"), ("embed", "src"), ("object", "data"), ("image", "href")}
REMOTE = re.compile(r"^\s*(https?:)?//", re.I)


class _Fetches(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self._style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._style = tag == "style"
        for name, value in attrs:
            if (tag, name) in FETCHING and value:
                self.urls.append(value)
            if name == "style" and value:
                self.urls += re.findall(r"url\(\s*['\"]?([^'\")]+)", value)

    def handle_endtag(self, tag: str) -> None:
        self._style = False

    def handle_data(self, data: str) -> None:
        if self._style:
            self.urls += re.findall(r"url\(\s*['\"]?([^'\")]+)", data)
            self.urls += re.findall(r"@import\s+['\"]([^'\"]+)", data)


def remote_fetches(page: str) -> list[str]:
    """The http(s) or protocol-relative URLs a browser would fetch when ``page`` opens."""
    parser = _Fetches()
    parser.feed(page)
    return [u for u in parser.urls if REMOTE.match(u)]


def write_all_pages(root: Path) -> dict[str, Path]:
    """Run every HTML writer on a tiny PCBM under ``root``; returns page kind -> file."""
    from cbm.cli import main
    from cbm.data import make_concept_world
    from cbm.edits import Prune
    from cbm.edits.history import EditSession
    from cbm.io import save_model
    from cbm.models import create_model

    world = make_concept_world(n_classes=3, n_concepts=8, n_samples=120, dim=16, random_state=0)
    names = np.asarray(world.class_names)
    model = create_model("pcbm", concepts=world.bank, n_lambdas=1, max_iter=200, device="cpu")
    model.fit(world["train"].X, names[world["train"].y])
    path = root / "model"
    save_model(model, path, note="offline pages")
    rng = np.random.default_rng(0)
    arrays = world.arrays()
    for s in world.splits:
        arrays |= {f"y_{s}": names[world[s].y], f"ids_{s}": np.asarray([f"{s}-{i:03d}" for i in range(len(world[s]))]),
                   f"images_{s}": rng.integers(0, 255, (len(world[s]), 28, 28), dtype=np.uint8)}
    np.savez(path / "data.npz", **arrays)
    np.savez(root / "eval.npz", **{k: v for k, v in arrays.items() if not k.endswith("_train")})  # no ANEC refit
    pages: dict[str, Path] = {}
    plots = root / "plots"
    assert main(["eval", str(path), "--data", str(root / "eval.npz"), "--annotations", "data",
                 "--interventions", "random", "--plots", str(plots)]) == 0
    pages["eval concepts"] = plots / "concepts_test.html"
    pages["eval interventions"] = plots / "interventions_test.html"
    pages["sample report"] = root / "sample.html"
    assert main(["report", str(path), "--sample", "test-003", "-o", str(pages["sample report"])]) == 0
    session = EditSession(path, user="tester")
    session.apply(Prune(model.class_names_[0], model.concept_names_[0]), why="offline check")
    session.save(note="pruned")
    pages["edit report"] = root / "edit.html"
    assert main(["report", str(path), "--edit", "1", "-o", str(pages["edit report"])]) == 0
    (root / "offline.toml").write_text(EXPERIMENT)
    assert main(["run", str(root / "offline.toml"), "--out", str(root / "run")]) == 0
    pages["run summary"] = next((root / "run").rglob("summary.html"))
    for kind, file in pages.items():
        assert file.is_file(), f"{kind}: {file} was not written"
    return pages
