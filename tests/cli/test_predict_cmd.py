"""`cbm predict`: a model over an image folder or its embedding cache -> one explained row per image,
resumable, refusing another model's CSV."""

import csv
import shutil
import subprocess
import sys

import numpy as np
import pytest
from own_data import CLASSES, fail_cli, run_cli

from cbm.edits import ScaleWeight
from cbm.edits.history import EditSession
from cbm.store import EmbeddingCache


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def from_images(own_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("pred") / "images.csv"
    text = run_cli(["predict", own_model["model"], own_model["root"] / "photos", "--out", out,
                    "--no-progress", "--batch-size", "7"])
    assert f"wrote 30 prediction(s) to {out}" in text and "(model version 1)" in text
    return out


def test_one_row_per_image_with_probabilities_concepts_and_version(from_images):
    rows = read_rows(from_images)
    assert len(rows) == 30 and len({r["id"] for r in rows}) == 30
    assert list(rows[0]) == ["id", "predicted", "confidence", *[f"p:{c}" for c in sorted(CLASSES)],
                             "concepts_for", "concepts_against", "ood_score", "ood_flag", "model_version"]
    for r in rows:
        assert float(r["ood_score"]) >= 0 and r["ood_flag"] in ("0", "1")
        p = np.array([float(r[f"p:{c}"]) for c in CLASSES])
        assert abs(p.sum() - 1) < 1e-4 and r["predicted"] in CLASSES
        assert r["model_version"] == "1"
        assert r["predicted"] == max(CLASSES, key=lambda c: float(r[f"p:{c}"]))
        assert r["confidence"] == r[f"p:{r['predicted']}"]  # the predicted class's probability
    named = " ".join(r["concepts_for"] + " " + r["concepts_against"] for r in rows)
    assert "(+" in named or "(-" in named  # "name (+0.123)" entries


def test_the_embedding_cache_gives_the_same_predictions(own_model, from_images, tmp_path):
    out = tmp_path / "cache.csv"
    run_cli(["predict", own_model["model"], own_model["embeddings"], "--out", out, "--no-progress"])
    by_id = {r["id"]: r for r in read_rows(from_images)}
    rows = read_rows(out)
    cache = EmbeddingCache(own_model["embeddings"])
    proba = EditSession(own_model["model"]).model.predict_proba(cache.as_array())
    assert [r["id"] for r in rows] == cache.ids  # in the cache's order
    assert np.allclose([[float(r[f"p:{c}"]) for c in CLASSES] for r in rows], proba, atol=1e-5)
    assert sorted(r["id"] for r in rows) == sorted(by_id)
    for r in rows:  # cached float16 embeddings vs fresh float32 ones
        assert max(abs(float(r[f"p:{c}"]) - float(by_id[r["id"]][f"p:{c}"])) for c in CLASSES) < 0.02


def test_a_second_run_resumes_after_a_crash(own_model, from_images, tmp_path):
    full = from_images.read_text(encoding="utf-8").splitlines(keepends=True)
    out = tmp_path / "p.csv"
    out.write_text("".join(full[:11]) + full[11][:9], encoding="utf-8")  # 10 rows + a torn line
    text = run_cli(["predict", own_model["model"], own_model["root"] / "photos", "--out", out,
                    "--no-progress"])
    assert "wrote 20 prediction(s)" in text and "10 already there were kept" in text
    rows, expected = read_rows(out), {r["id"]: r for r in read_rows(from_images)}
    assert len(rows) == 30 and {r["id"] for r in rows} == set(expected)  # no id twice, none lost
    for r in rows:  # (batches of another size may differ in the last digit)
        assert r["predicted"] == expected[r["id"]]["predicted"]
        assert max(abs(float(r[f"p:{c}"]) - float(expected[r["id"]][f"p:{c}"])) for c in CLASSES) < 1e-4
    assert "wrote 0 prediction(s)" in run_cli(["predict", own_model["model"], own_model["embeddings"],
                                               "--out", out, "--no-progress"])


def test_a_csv_of_another_model_version_is_refused(own_model, from_images, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(own_model["model"], model)
    session = EditSession(model)
    session.apply(ScaleWeight(cls=CLASSES[0], concept=session.model.concept_names_[0], factor=0.5))
    out = tmp_path / "p.csv"
    shutil.copy(from_images, out)
    err = fail_cli(["predict", model, own_model["embeddings"], "--out", out, "--no-progress"])
    assert "holds predictions of model version '1', but the model is now at '1+1'" in err
    run_cli(["predict", model, own_model["embeddings"], "--out", tmp_path / "new.csv", "--no-progress"])
    assert {r["model_version"] for r in read_rows(tmp_path / "new.csv")} == {"1+1"}


def test_unreadable_images_are_named_and_skipped(own_model, tmp_path):
    photos = tmp_path / "photos"
    shutil.copytree(own_model["root"] / "photos" / CLASSES[1], photos / CLASSES[1])
    (photos / CLASSES[1] / "broken.png").write_bytes(b"\x89PNG no")
    text = run_cli(["predict", own_model["model"], photos, "--out", tmp_path / "p.csv", "--no-progress"])
    assert "broken.png" in text and "wrote 10 prediction(s)" in text and "skipped 1 unreadable" in text


def test_bad_sources_are_one_clear_error(own_model, tmp_path):
    err = fail_cli(["predict", own_model["model"], tmp_path / "nowhere", "--out", tmp_path / "p.csv"])
    assert "nowhere" in err and "not found" in err
    (tmp_path / "notes.txt").write_text("hi")
    err = fail_cli(["predict", own_model["model"], tmp_path / "notes.txt", "--out", tmp_path / "p.csv"])
    assert "neither an image folder" in err


def test_help_does_not_import_torch():
    code = ("import sys; from cbm.cli import main; main(['predict', '--help'])")
    run = subprocess.run([sys.executable, "-c", code + "\n"], capture_output=True, text=True)
    assert "--out" in run.stdout
    code = "import sys; from cbm.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_dicom_scans_are_predicted_and_explained(own_model, tmp_path):
    from dicom_files import PATIENT_NAME, write_dicom

    scans = tmp_path / "scans"
    scans.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        write_dicom(scans / f"{i}.dcm", rng.integers(0, 4096, (32, 32)).astype(np.uint16),
                    WindowCenter="2048", WindowWidth="4096")
    out = tmp_path / "p.csv"
    text = run_cli(["predict", own_model["model"], scans, "--out", out, "--no-progress"])
    assert "wrote 3 prediction(s)" in text
    assert [r["id"] for r in read_rows(out)] == ["0.dcm", "1.dcm", "2.dcm"]
    assert PATIENT_NAME.split("^")[0] not in out.read_text(encoding="utf-8")
    explained = run_cli(["explain", own_model["model"], "--image", scans / "0.dcm"])
    assert "predicted" in explained and PATIENT_NAME.split("^")[0] not in explained


@pytest.mark.parametrize("content", [
    b"name,age\nbob,3",  # someone's CSV whose last line has no newline
    b"my only line",  # a one-line file without newline
    b"id,predicted",  # even the start of a header is not proof that the file is ours
    b"\x00\xff\xfe binary \x89PNG\n junk",
    "id;données\nrow\n".encode("utf-16"),
], ids=["last-line-without-newline", "one-line", "header-prefix", "binary", "utf-16"])
def test_an_existing_file_that_is_not_our_output_is_refused_byte_for_byte_unchanged(
        own_model, tmp_path, content):
    out = tmp_path / "notes.csv"
    out.write_bytes(content)
    err = fail_cli(["predict", own_model["model"], own_model["embeddings"], "--out", out, "--no-progress"])
    assert str(out) in err and "left unchanged" in err and "Traceback" not in err
    assert out.read_bytes() == content


def test_a_torn_line_is_cut_only_after_the_rows_above_it_are_verified(own_model, from_images, tmp_path):
    lines = from_images.read_bytes().splitlines(keepends=True)
    other_version = lines[2].replace(b",1\n", b",7\n")
    content = b"".join(lines[:2]) + other_version + lines[3][:9]
    out = tmp_path / "p.csv"
    out.write_bytes(content)
    err = fail_cli(["predict", own_model["model"], own_model["embeddings"], "--out", out, "--no-progress"])
    assert "model version '7'" in err
    assert out.read_bytes() == content  # the torn line is still there: the file was not verified


def test_out_a_folder_or_under_a_file_is_one_clear_error(own_model, tmp_path):
    err = fail_cli(["predict", own_model["model"], own_model["embeddings"], "--out", tmp_path, "--no-progress"])
    assert f"--out {str(tmp_path)!r} is a folder" in err and "predictions.csv" in err
    (tmp_path / "a-file").write_text("keep me")
    under = tmp_path / "a-file" / "p.csv"
    err = fail_cli(["predict", own_model["model"], own_model["embeddings"], "--out", under, "--no-progress"])
    assert str(under) in err and "Cannot use --out" in err
    assert (tmp_path / "a-file").read_text() == "keep me"


FORMULA = '=HYPERLINK("evil.example","click")'  # a folder name: no slash


def formula_cells(path):
    """Cells a spreadsheet would run as formulas (numbers such as -0.5 are fine)."""
    import re

    number = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
    with open(path, newline="", encoding="utf-8") as fh:
        return [c for row in csv.reader(fh) for c in row
                if c.startswith(("=", "+", "-", "@", "\t", "\r")) and not number.fullmatch(c)]


@pytest.fixture(scope="module")
def hostile_model(own_model, tmp_path_factory):
    """A model whose class folder, image names and concepts start like spreadsheet formulas."""
    import json

    root = tmp_path_factory.mktemp("hostile")
    classes = {FORMULA: ["@SUM(1+1)", "-2+3 stripes"], "plain": ["+dots", "smooth"]}
    for cls, src in zip(classes, CLASSES[:2], strict=True):
        shutil.copytree(own_model["root"] / "photos" / src, root / "photos" / cls)
    for f in (root / "photos" / FORMULA).iterdir():
        f.rename(f.with_name(f"=cmd|' -C calc'!A0 {f.name}"))
    (root / "concepts.json").write_text(json.dumps(classes), encoding="utf-8")
    ckpt = own_model["checkpoint"]
    run_cli(["embed", root / "photos", "--encoder", "openclip:cbm-tiny-clip", "--pretrained", ckpt,
             "--cache-dir", root / "cache", "--device", "cpu", "--no-progress"])
    entry = next((root / "cache" / "embeddings").iterdir())
    run_cli(["concepts", "generate", "--source", "labo", "--input", root / "concepts.json",
             "--encoder", "openclip:cbm-tiny-clip", "--pretrained", ckpt, "--out", root / "bank"])
    run_cli(["train", "--method", "labo", "--concepts", root / "bank", "--data", entry,
             "--out", root / "model", "--param", "max_epochs=2", "--quiet"])
    return root


def test_formula_like_class_image_and_concept_names_are_neutralised_and_still_resume(hostile_model):
    out = hostile_model / "p.csv"
    args = ["predict", hostile_model / "model", hostile_model / "photos", "--out", out, "--no-progress"]
    assert "wrote 20 prediction(s)" in run_cli(args)
    assert formula_cells(out) == []
    rows = read_rows(out)
    assert f"p:{FORMULA}" in rows[0]
    assert {r["predicted"] for r in rows} <= {"'" + FORMULA, "plain"}
    assert sum(r["id"].startswith(f"'{FORMULA}/=cmd|") for r in rows) == 10  # the quote shows, nothing runs
    named = " ".join(r["concepts_for"] + r["concepts_against"] for r in rows)
    assert "'@SUM(1+1)" in named or "'-2+3 stripes" in named or "'+dots" in named
    assert "wrote 0 prediction(s)" in run_cli(args)  # ids and header are read back unquoted
