"""A small model directory for the app tests: a synthetic concept world, a fitted model, data.npz.

The template is built once per session; each test gets its own copy, because edits write into it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from browser_pages import CHROMIUM_ARGS, free_port, stop, wait_healthy

from cbm.app import streamlit_command
from cbm.data import make_concept_world
from cbm.io import load_model, save_model

ENTRY = Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py"


def _fit_model(world):
    """PCBM on the world's concept bank when available, else the linear-probe baseline."""
    from cbm.models import create_model

    X, y = world["train"].X, np.asarray(world.class_names)[world["train"].y]
    try:
        model = create_model("pcbm", concepts=world.bank)
    except (ImportError, ModuleNotFoundError, AttributeError):
        model = create_model("linear-probe")
    return model.fit(X, y)


def _images(split, spurious_index: int | None, rng: np.random.Generator) -> np.ndarray:
    """28x28 uint8 thumbnails: a class-specific stripe pattern plus noise; a bright corner tag marks
    the spurious concept."""
    n = len(split)
    img = rng.integers(0, 60, (n, 28, 28), dtype=np.uint8)
    for i, k in enumerate(split.y):
        img[i, :, (int(k) * 5) % 28::7] += 120
    if spurious_index is not None:
        img[split.concepts[:, spurious_index] > 0, 1:6, 1:6] = 255
    return img


def build_model_dir(path: Path) -> Path:
    """Write a fitted model and its evaluation data to ``path``."""
    world = make_concept_world(n_classes=3, n_concepts=9, n_samples=150, dim=32,
                               spurious=True, random_state=0)
    model = _fit_model(world)
    save_model(model, path, note="app test fixture",
               fingerprints={"encoder": {"name": "synthetic", "image_size": 28}})
    rng = np.random.default_rng(0)
    arrays = {}
    for s in ("test", "shifted", "train"):
        split = world[s]
        arrays[f"X_{s}"] = split.X
        arrays[f"y_{s}"] = np.asarray(world.class_names)[split.y]
        arrays[f"domains_{s}"] = split.domains
        arrays[f"ids_{s}"] = np.asarray([f"{s}-{i:04d}" for i in range(len(split))])
        arrays[f"images_{s}"] = _images(split, world.spurious_index, rng)
    np.savez(path / "data.npz", **arrays)
    return path


@pytest.fixture(scope="session")
def _template_dir(tmp_path_factory) -> Path:
    return build_model_dir(tmp_path_factory.mktemp("template") / "model")


@pytest.fixture
def model_dir(_template_dir, tmp_path, monkeypatch) -> Path:
    """A fresh copy of the fixture model directory, passed to the app via CBM_MODEL_DIR."""
    path = tmp_path / "model"
    shutil.copytree(_template_dir, path)
    monkeypatch.setenv("CBM_MODEL_DIR", str(path))
    return path


@pytest.fixture
def moving_prune(model_dir) -> tuple[str, str]:
    """A (class, concept) whose pruning changes accuracy on the shifted split (most, if several)."""
    model = load_model(model_dir)
    with np.load(model_dir / "data.npz", allow_pickle=False) as z:
        X, y = z["X_shifted"], z["y_shifted"]
    A = model.transform(X)
    base = (model.classes_[model.logits_from_activations(A).argmax(1)] == y).mean()
    best, pick = 0.0, None
    for k, cls in enumerate(model.class_names_):
        for j in np.argsort(-np.abs(model.coef_[k]))[:5]:
            W = model.coef_.copy()
            W[k, j] = 0.0
            acc = (model.classes_[(A @ W.T + model.intercept_).argmax(1)] == y).mean()
            if abs(acc - base) > best:
                best, pick = abs(acc - base), (cls, model.concept_names_[j])
    assert pick is not None, "no single prune changes the fixture's shifted accuracy"
    return pick


@pytest.fixture(scope="session")
def app_timings() -> dict[str, float]:
    """Seconds per page load and interaction, measured by the browser tests; written to the JSON file
    named by ``$CBM_APP_TIMINGS`` (set by benchmarks/bench_app.py) at the end, else dropped."""
    timings: dict[str, float] = {}
    yield timings
    out = os.environ.get("CBM_APP_TIMINGS")
    if out and timings:
        Path(out).write_text(json.dumps(timings, indent=2) + "\n")


# -- the browser tests: a model, a Streamlit server for it, Chromium --------------------------------
@pytest.fixture
def browser_model(request, tmp_path) -> tuple[Path, tuple[str, str]]:
    """The quick demo's model (real Fashion-MNIST images) and its spurious (class, concept) when the
    data is installed; else the synthetic fixture model and a prune that moves its shifted accuracy."""
    try:
        if os.environ.get("CBM_BROWSER_MODEL") == "synthetic":
            pytest.skip("CBM_BROWSER_MODEL=synthetic")
        demo = request.getfixturevalue("quick_demo")
    except pytest.skip.Exception:
        return request.getfixturevalue("model_dir"), request.getfixturevalue("moving_prune")
    from cbm.demo import ARTIFACT

    path = tmp_path / "demo-model"
    shutil.copytree(demo.model_dir, path)
    black_box = demo.model_dir.parent / "models" / "linear-probe"  # the edit preview's baselines
    if black_box.is_dir():
        shutil.copytree(black_box, tmp_path / "models" / "linear-probe")
    return path, (demo.config.confound.confounded_class, ARTIFACT)


@pytest.fixture
def server(browser_model, tmp_path):
    """A Streamlit server for the model on a free port; stopped by its own PID afterwards."""
    model_dir = browser_model[0]
    port = free_port()
    cmd = streamlit_command(model_dir, port=port, extra=[
        "--server.address", "127.0.0.1", "--server.fileWatcherType", "none"])
    log = open(tmp_path / "streamlit.log", "wb")  # noqa: SIM115 - closed below
    env = dict(os.environ, CBM_MODEL_DIR=str(model_dir), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        stop(proc)
        log.close()


@pytest.fixture
def browser():
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); the browser test needs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
