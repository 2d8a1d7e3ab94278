"""Every reader of user files, fed arbitrary bytes or a mutated valid file, fails only with cbmkit's errors.

Property-based (hypothesis): for images, DICOM, CSV/JSONL manifests, concept files, evaluation
``.npz`` files, a model directory's ``model.json``, experiment TOML files (and their checked
structure) and LLM answers, any input either reads or raises a :class:`cbm.exceptions.CBMError`
subclass, never a bare ``KeyError``/``IndexError``/``TypeError``/``UnicodeDecodeError`` (a traceback
for the user); it never hangs (the hypothesis deadline) and its Python allocations stay under
:data:`MEMORY_LIMIT` (tracemalloc peak; numpy reports its arrays there too).

Inputs are either arbitrary bytes or a valid file with one mutation (a byte flipped, the file cut,
bytes inserted or a slice doubled), and for the structured formats a valid structure with one value
replaced by an arbitrary JSON value or array.

Profiles: ``ci`` (the default: 25 examples per reader, the whole file well under a minute) and
``fuzz`` (2,000 per reader), chosen by ``HYPOTHESIS_PROFILE=fuzz`` -- ``make fuzz`` runs this file so.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import tracemalloc
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from dicom_files import write_dicom
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from cbm.exceptions import CBMError

settings.register_profile("ci", max_examples=25, deadline=timedelta(seconds=10), derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("fuzz", max_examples=2000, deadline=timedelta(seconds=10),
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
#: Peak of Python (and numpy) allocations while one small input is read.
MEMORY_LIMIT = 200 * 2**20


def fuzz(test):
    """The profile's settings on one property test (local: other test files keep hypothesis' defaults)."""
    return settings(PROFILE)(test)


def reads_or_refuses(read, *args, allowed: tuple[type[BaseException], ...] = (CBMError,), **kwargs):
    """Call ``read``; an error must be one of ``allowed``; the allocation peak must stay under MEMORY_LIMIT."""
    tracemalloc.start()
    try:
        return read(*args, **kwargs)
    except allowed:
        return None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < MEMORY_LIMIT, f"{read.__name__} allocated {peak / 2**20:.0f} MiB on a small input"


# -- inputs ---------------------------------------------------------------------------------------------
@st.composite
def mutated(draw, valid: bytes) -> bytes:
    """``valid`` with one mutation: a byte changed, cut short, bytes inserted, or a slice repeated."""
    i = draw(st.integers(0, len(valid)))
    kind = draw(st.sampled_from(["flip", "cut", "insert", "repeat"]))
    if kind == "flip" and i < len(valid):
        return valid[:i] + bytes([draw(st.integers(0, 255))]) + valid[i + 1:]
    if kind == "cut":
        return valid[:i]
    if kind == "insert":
        return valid[:i] + draw(st.binary(min_size=1, max_size=64)) + valid[i:]
    j = draw(st.integers(i, len(valid)))
    return valid[:j] + valid[i:j] * draw(st.integers(2, 50)) + valid[j:]


def hostile(valid: bytes):
    """Arbitrary bytes, or a mutation of ``valid``."""
    return st.one_of(st.binary(max_size=2048), mutated(valid))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)


def replaced(obj, draw):
    """``obj`` (a JSON-like dict/list) with one value, at any depth, replaced by an arbitrary one."""
    if isinstance(obj, dict) and obj:
        key = draw(st.sampled_from(sorted(obj)))
        deeper = draw(st.booleans())
        return {**obj, key: replaced(obj[key], draw) if deeper else draw(json_values)}
    if isinstance(obj, list) and obj:
        i = draw(st.integers(0, len(obj) - 1))
        return [*obj[:i], replaced(obj[i], draw), *obj[i + 1:]]
    return draw(json_values)


@pytest.fixture
def scratch():
    """One folder for the whole property test (hypothesis reuses it across examples)."""
    folder = Path(tempfile.mkdtemp(prefix="hostile-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (6, 5), (200, 30, 90)).save(buf, "PNG")
    return buf.getvalue()


def _dicom() -> bytes:
    with tempfile.TemporaryDirectory() as d:
        path = write_dicom(Path(d) / "x.dcm", np.arange(30, dtype=np.uint16).reshape(5, 6),
                           RescaleSlope=2, RescaleIntercept=-5, WindowCenter=20, WindowWidth=40)
        return path.read_bytes()


# -- the readers ----------------------------------------------------------------------------------------
@fuzz
@given(data=hostile(_png()))
def test_an_image_reads_or_is_one_data_error(data):
    from cbm.data.images import read_image

    image = reads_or_refuses(read_image, data, name="upload.png", max_pixels=10_000)
    assert image is None or image.mode == "RGB"


@fuzz
@given(data=hostile(_dicom()))
def test_a_dicom_file_reads_or_is_one_data_error(data):
    from cbm.data.dicom import read_dicom

    image = reads_or_refuses(read_dicom, io.BytesIO(data), "scan.dcm", 10_000)
    assert image is None or image.mode == "RGB"


@fuzz
@given(data=hostile(_png()), suffix=st.sampled_from([".png", ".jpg", ".dcm", ""]))
def test_an_image_file_in_a_folder_opens_or_is_one_data_error(data, suffix, scratch):
    from cbm.data.folders import open_image

    path = scratch / f"img{suffix}"
    path.write_bytes(data)
    reads_or_refuses(open_image, path, max_pixels=10_000)


MANIFEST_CSV = b"path,label,split,site,id\na/0.png,cat,train,A,x0\nb/1.png,dog,test,B,x1\n"
MANIFEST_JSONL = (b'{"path": "a/0.png", "label": "cat", "split": "train"}\n'
                  b'{"path": "b/1.png", "label": "dog", "site": "B"}\n')


@fuzz
@given(data=st.one_of(hostile(MANIFEST_CSV).map(lambda b: (".csv", b)),
                      hostile(MANIFEST_JSONL).map(lambda b: (".jsonl", b))))
def test_a_manifest_reads_or_is_one_data_error(data, scratch):
    from cbm.data.folders import read_manifest

    suffix, raw = data
    path = scratch / f"manifest{suffix}"
    path.write_bytes(raw)
    dataset = reads_or_refuses(read_manifest, path, root=scratch)
    if dataset is not None:
        assert len(dataset) >= 1


CONCEPT_FILES = {
    ".txt": b"red crown\nlong tail\n",
    ".csv": b"concept,text,class\nred crown,a red crown,cardinal\nlong tail,,jay\n",
    ".json": json.dumps({"cardinal": ["red crown", "black mask"], "jay": {"blue wings?": "yes"}}).encode(),
}


@fuzz
@given(data=st.sampled_from(sorted(CONCEPT_FILES)).flatmap(
    lambda s: st.tuples(st.just(s), hostile(CONCEPT_FILES[s]))))
def test_a_concept_file_reads_or_is_one_data_error(data, scratch):
    from cbm.concepts import load_concepts

    suffix, raw = data
    path = scratch / f"concepts{suffix}"
    path.write_bytes(raw)
    bank = reads_or_refuses(load_concepts, path)
    assert bank is None or len(bank) >= 1


@fuzz
@given(doc=st.data())
def test_a_concept_json_of_any_shape_reads_or_is_one_data_error(doc, scratch):
    from cbm.concepts import load_concepts

    valid = json.loads(CONCEPT_FILES[".json"])
    path = scratch / "concepts.json"
    path.write_text(json.dumps(replaced(valid, doc.draw)), encoding="utf-8")
    reads_or_refuses(load_concepts, path)


def _npz(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


VALID_EVAL = {"X_train": np.ones((4, 3), np.float32), "y_train": np.array([0, 1, 0, 1]),
              "X_test": np.zeros((2, 3), np.float32), "y_test": np.array(["a", "b"]),
              "ids_test": np.array(["t0", "t1"]), "class_names": np.array(["a", "b"])}
small_arrays = hnp.arrays(dtype=st.sampled_from([np.float32, np.int64, np.bool_, np.dtype("<U3")]),
                          shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=4))


@fuzz
@given(data=st.one_of(hostile(_npz(VALID_EVAL)),
                      st.dictionaries(st.sampled_from(sorted(VALID_EVAL)), small_arrays, max_size=6).map(
                          lambda change: _npz({**VALID_EVAL, **change}))))
def test_an_evaluation_npz_reads_or_is_one_data_error(data, scratch):
    from cbm.data.evalfile import load_eval_data, read_sample

    path = scratch / "data.npz"
    path.write_bytes(data)
    splits = reads_or_refuses(load_eval_data, path)
    if splits is not None:
        assert all(len(s["X"]) == len(s["y"]) for s in splits.values())
    reads_or_refuses(read_sample, path, "t1")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from world_models import save_on_world

    from cbm.data import make_concept_world

    world = make_concept_world(n_classes=2, n_concepts=8, n_samples=40, dim=8, random_state=0)
    return save_on_world(world, tmp_path_factory.mktemp("hostile") / "m", max_epochs=3)


@fuzz
@given(doc=st.data())
def test_a_model_json_of_any_content_loads_or_is_one_model_dir_error(doc, model_dir):
    from cbm.io import load_model

    pointer = model_dir / "model.json"
    valid = pointer.read_bytes()
    if doc.draw(st.booleans()):
        pointer.write_bytes(doc.draw(hostile(valid)))
    else:
        pointer.write_text(json.dumps(replaced(json.loads(valid), doc.draw)), encoding="utf-8")
    try:
        reads_or_refuses(load_model, model_dir)
    finally:
        pointer.write_bytes(valid)


EXPERIMENT = b"""name = "tiny"
seeds = [0, 1]
[data]
source = "synthetic"
params = { n_classes = 2, n_concepts = 4 }
[concepts]
source = "data"
[method]
name = "pcbm"
params = { lam = 1e-3 }
[grid]
"method.params.lam" = [1e-4, 1e-3]
[evaluation]
interventions = ["random"]
"""


@fuzz
@given(data=hostile(EXPERIMENT))
def test_an_experiment_file_loads_or_is_one_experiment_error(data, scratch):
    from cbm.research.experiment import expand, load_config

    path = scratch / "exp.toml"
    path.write_bytes(data)
    cfg = reads_or_refuses(load_config, path)
    if cfg is not None:
        reads_or_refuses(expand, cfg)


@fuzz
@given(doc=st.data())
def test_an_experiment_of_any_structure_is_checked_with_one_experiment_error(doc):
    import tomllib

    from cbm.research.experiment import check_config, expand

    cfg = replaced(tomllib.loads(EXPERIMENT.decode()), doc.draw)
    if reads_or_refuses(check_config, cfg, "exp.toml", allowed=(CBMError,)) is None and _checked(cfg):
        reads_or_refuses(expand, cfg)


def _checked(cfg) -> bool:
    from cbm.research.experiment import check_config

    try:
        check_config(cfg, "exp.toml")
        return True
    except CBMError:
        return False


@fuzz
@given(text=st.one_of(st.none(), st.text(max_size=400), json_values.map(json.dumps),
                      st.lists(st.text(max_size=30), max_size=8).map(lambda items: "\n".join(f"- {i}" for i in items))))
def test_an_llm_answer_parses_without_raising(text):
    from cbm.concepts._answer_parser import parse_concepts

    parsed = reads_or_refuses(parse_concepts, text, allowed=())
    assert all(isinstance(c, str) and c.strip() for c in parsed.concepts)
