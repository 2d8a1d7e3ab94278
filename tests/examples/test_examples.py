"""The numbered scripts in examples/ run offline in their quick mode and print their key result.

Each script runs in a subprocess, as a user would run it: hub downloads disabled, no LLM endpoint
configured, and a temporary ``CBM_HOME``/``CBM_CACHE_DIR`` so nothing touches the user's cache.
The numbers checked are the claims each example makes (e.g. pruning the spurious concept helps
on the shifted split), not exact values.
"""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each example is a subprocess that trains models

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("[0-9][0-9]_*.py"))


def run_example(name: str, tmp_path: Path, *args: str, cache: Path | None = None) -> str:
    """Run an example with ``--quick`` in ``tmp_path``; its stdout. ``cache``: the embedding cache
    folder (default: a fresh one in ``tmp_path``)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("CBM_LLM_BASE_URL", "CBM_LLM_API_KEY", "OPENAI_API_KEY")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1",
               CBM_HOME=str(tmp_path / "home"), CBM_CACHE_DIR=str(cache or tmp_path / "cache"))
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), "--quick", *args], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def floats(pattern: str, text: str) -> list[float]:
    match = re.search(pattern, text)
    assert match, f"no line matching {pattern!r} in:\n{text}"
    return [float(g) for g in match.groups()]


def test_there_are_six_numbered_examples_and_an_index():
    assert [p.name[:2] for p in SCRIPTS] == ["01", "02", "03", "04", "05", "06"]
    index = (EXAMPLES / "README.md").read_text()
    for script in SCRIPTS:
        assert script.name in index


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_example_has_a_docstring_a_main_and_uses_only_public_api(script):
    tree = ast.parse(script.read_text())
    assert "What this teaches" in (ast.get_docstring(tree) or "")
    assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cbm"):
            assert not any(part.startswith("_") for part in node.module.split(".")), node.module
            assert not any(a.name.startswith("_") for a in node.names), ast.unparse(node)
        if isinstance(node, ast.Attribute):
            assert not (node.attr.startswith("_") and not node.attr.startswith("__")), ast.unparse(node)


def test_01_labo_selects_concepts_and_beats_chance(tmp_path):
    out = run_example("01_labo_llm_concepts.py", tmp_path)
    assert "no LLM endpoint configured (CBM_LLM_BASE_URL" in out
    assert "with open_clip weights this would embed images with ViT-B-32" in out
    kept, total = floats(r"kept (\d+) of (\d+) candidate concepts", out)
    assert 0 < kept < total
    (acc,) = floats(r"test accuracy: (\d\.\d+)", out)
    assert acc > 0.6  # 5 classes: chance is 0.2
    assert len(re.findall(r"^  \S.*\(\d+\.\d+\)", out, re.M)) == 5  # top concepts for each class


def test_02_pcbm_on_cavs_reports_both_models(tmp_path):
    out = run_example("02_pcbm_cavs.py", tmp_path)
    (cav_acc, _) = floats(r"accuracy mean (\d\.\d+), worst (\d\.\d+)", out)
    assert cav_acc > 0.8
    for method in ("pcbm", "pcbm-h"):
        (acc,) = floats(rf"{method} test accuracy: (\d\.\d+)", out)
        assert acc > 0.6
    (precision, recall) = floats(r"concept recovery: precision (\d\.\d+), recall (\d\.\d+)", out)
    assert precision > 0.5 and recall > 0.5  # the CAV head finds the planted class concepts


def test_03_knobo_cites_the_corpus_and_the_prior_helps_after_the_shift(tmp_path):
    out = run_example("03_knobo_textbook.py", tmp_path)
    assert re.search(r"retrieved for 'cardinal': \[cardinal\.md#0\]", out)
    assert re.search(r"concept '.+' cites \[\w+\.md#0\]", out)
    _, shifted_prior = floats(r"with the prior: in-domain accuracy (\d\.\d+), shifted accuracy (\d\.\d+)", out)
    _, shifted_free = floats(r"without the prior: in-domain accuracy (\d\.\d+), shifted accuracy (\d\.\d+)", out)
    assert shifted_prior >= shifted_free


def test_04_sparse_cbm_reports_accuracy_and_nec(tmp_path):
    out = run_example("04_sparse_cbm_gumbel.py", tmp_path, "--objectives", "gumbel")
    acc, nec, anec5 = floats(r"sparse-cbm \(gumbel\) test accuracy: (\d\.\d+), NEC (\d+\.\d+), "
                             r"ANEC-5 (\d\.\d+)", out)
    assert acc > 0.6 and 0 < nec <= 20 and 0 <= anec5 <= 1


def test_05_pruning_the_suggested_spurious_concept_helps_after_the_shift(tmp_path):
    model_dir = tmp_path / "birds"
    out = run_example("05_global_edit.py", tmp_path, "--model-dir", str(model_dir))
    first = out.split("suggested edits")[1].splitlines()[1]
    assert "water background" in first
    assert "preview (nothing committed yet)" in out
    assert "after undo: 0 pending edit(s); redo available: True" in out
    before, after = floats(r"shifted accuracy: v1 (\d\.\d+) -> v2 (\d\.\d+)", out)
    assert after > before
    assert sorted(p.name for p in model_dir.glob("v*")) == ["v0001", "v0002"]


@pytest.fixture(scope="module")
def images_cache(tmp_path_factory) -> Path:
    """One embedding cache for both runs of example 06 (the same images): the second run reads it."""
    return tmp_path_factory.mktemp("example-06-cache")


def test_06_llm_concepts_reach_a_labo_model_on_real_images(tmp_path, images_cache):
    """Offline: textbook keyphrases stand in for the LLM; with a local endpoint, its concepts do."""
    out = run_example("06_llm_concepts_real_images.py", tmp_path, cache=images_cache)
    assert "garment textbook by keyphrase extraction" in out
    (acc, chance) = floats(r"test accuracy (\d\.\d+) \(chance (\d\.\d+)\)", out)
    assert acc > 0.5 > chance


def test_06_with_a_local_llm_endpoint_uses_its_concepts(tmp_path, images_cache):
    import json

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "concepts"))
    from fake_llm import serve

    answers = {"Sneaker": ["laces", "rubber sole"], "Bag": ["a handle", "a strap"],
               "Trouser": ["two legs"], "Sandal": ["open toes", "straps"], "Ankle boot": ["a heel"]}
    with serve() as (url, fake):
        fake.responder = lambda prompt: json.dumps(
            next((v for k, v in answers.items() if k in prompt), ["sleeves", "a collar"]))
        out = run_example("06_llm_concepts_real_images.py", tmp_path, "--llm-model", "test-model",
                          "--base-url", url, cache=images_cache)
    assert "LLM wrote" in out and len(fake.requests) >= 10
    (acc, _) = floats(r"test accuracy (\d\.\d+) \(chance (\d\.\d+)\)", out)
    assert acc > 0.3
