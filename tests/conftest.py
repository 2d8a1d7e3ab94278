"""Test-wide settings.

The suite runs offline by construction: hub downloads are disabled before any model library is
imported, so a test that would fetch weights fails at once instead of hanging on the network.
Torch uses one thread per process to keep timings stable on the 2-core CI machine.
Tests that use the end-to-end demo (``quick_demo``) are marked ``slow``, like the other long-running
tests, so ``pytest -m "not slow"`` is a quick inner loop; ``make test`` runs everything.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "quick_demo" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _seed():
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def shared_data() -> Path:
    """The read-only ../shared/data folder (real published concept sets); skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared concept sets not found at {SHARED_DATA} (they sit beside the repository)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def quick_demo(tmp_path_factory):
    """The demo on its small configuration (real Fashion-MNIST images), run once per session.

    Shared by the demo tests and the browser test; skips when Debian's dataset-fashion-mnist is absent.
    """
    from cbm.demo.pipeline import quick_config, run_demo
    from cbm.exceptions import DataError

    root = tmp_path_factory.mktemp("quick-demo")
    lines: list[str] = []
    try:
        result = run_demo(quick_config(out_dir=root / "demo", cache_dir=root / "cache"), progress=False,
                          log=lines.append)
        result.log_lines = lines  # what it announced as it ran, for the progress test
        return result
    except DataError as e:
        pytest.skip(f"Fashion-MNIST is not installed here ({e})")


@pytest.fixture
def one_thread():
    """One torch thread for tests of tiny problems, where thread hand-offs cost more than they save."""
    from world_models import one_torch_thread

    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def write_png_bomb():
    """``write(path, width=20000, height=20000)``: a real, valid PNG of zeros, written cheaply.

    Only the compressed stream (about 400 KB) is ever held, never the decoded pixels: the shape
    of a decompression bomb that once aborted ``cbm embed``.
    """
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    def write(path: Path, width: int = 20000, height: int = 20000) -> Path:
        z = zlib.compressobj(9)
        rows = b"\0" * (width + 1) * 500  # filter byte + one grayscale byte per pixel, 500 rows
        body = b"".join(z.compress(rows) for _ in range(height // 500)) + z.flush()
        ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body)
                         + chunk(b"IEND", b""))
        return path

    return write


@pytest.fixture(scope="module")
def ray_cluster(request):
    """A local Ray cluster with 2 CPUs for one test module (skipped without Ray), stopped after.

    The test module's own classes (fake encoders) are sent to the workers by value."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray.cloudpickle.register_pickle_by_value(request.module)
    try:
        yield ray
    finally:
        ray.cloudpickle.unregister_pickle_by_value(request.module)
        ray.shutdown()


@pytest.fixture(scope="session")
def saved_labo(tmp_path_factory) -> tuple[Path, object]:
    """(path, world): LaBo fitted on a small concept world (3 bird classes, 7 concepts, dim 16) and
    saved once as version 1 of a model directory, with the note "trained". Copy it (``labo_dir``)
    before changing it."""
    from world_models import save_on_world

    from cbm.data import make_concept_world

    world = make_concept_world(n_classes=3, n_concepts=7, n_samples=120, dim=16, random_state=1)
    path = save_on_world(world, tmp_path_factory.mktemp("labo") / "model", max_epochs=20, note="trained")
    return path, world


@pytest.fixture
def labo_dir(saved_labo, tmp_path) -> Path:
    """A fresh copy of the ``saved_labo`` model directory, for one test to edit."""
    import shutil

    return shutil.copytree(saved_labo[0], tmp_path / "model")
