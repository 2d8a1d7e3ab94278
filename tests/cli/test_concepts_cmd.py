"""`cbm concepts`: every source makes a bank with provenance; filter, select and show run."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from cbm.bank import ConceptBank
from cbm.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "concepts"))
from fake_llm import serve  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / "concepts" / "corpus"


@pytest.fixture
def endpoint(monkeypatch):
    monkeypatch.setenv("CBM_LLM_API_KEY", "sk-cli-secret")
    with serve() as (url, fake):
        yield url, fake


def test_generate_llm_then_show(endpoint, tmp_path, capsys):
    url, fake = endpoint
    fake.responder = lambda p: json.dumps(["striped fur" if "zebra" in p else "long neck"])
    out = tmp_path / "bank"
    rc = main(["concepts", "generate", "--source", "llm", "--classes", "zebra,giraffe",
               "--model", "m", "--base-url", url, "--family", "lfcbm",
               "--cache-dir", str(tmp_path / "cache"), "--out", str(out)])
    assert rc == 0
    bank = ConceptBank.load(out)
    assert bank.names == ["striped fur", "long neck"] and bank.provenance[0].source == "llm"
    np.testing.assert_array_equal(bank.prior, [[1, 0], [0, 1]])
    assert "sk-cli-secret" not in (out / "bank.json").read_text()
    assert main(["concepts", "show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "striped fur" in shown and "zebra:+1" in shown


def test_generate_textbook(endpoint, tmp_path):
    url, fake = endpoint
    fake.responder = lambda p: "yes" if p.startswith("For an image") else '["Is the heart enlarged?"]'
    out = tmp_path / "tb"
    assert main(["concepts", "generate", "--source", "textbook", "--classes", "cardiomegaly",
                 "--input", str(CORPUS), "--model", "m", "--base-url", url,
                 "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]) == 0
    bank = ConceptBank.load(out)
    assert bank.provenance[0].detail["citations"][0]["doc"] == "cardiomegaly.md"
    assert bank.prior.tolist() == [[1.0]]


def test_generate_cav_from_embeddings_then_select(tmp_path):
    rng = np.random.default_rng(0)
    d = 8
    arrays = {"negative": rng.normal(size=(30, d))}
    arrays.update({f"c{j}": rng.normal(size=(30, d)) + 4 * np.eye(d)[j] for j in range(4)})
    np.savez(tmp_path / "emb.npz", **arrays)
    out = tmp_path / "cav"
    assert main(["concepts", "generate", "--source", "cav", "--input", str(tmp_path / "emb.npz"),
                 "--method", "mean_diff", "--out", str(out)]) == 0
    bank = ConceptBank.load(out)
    assert bank.names == ["c0", "c1", "c2", "c3"] and "val_acc" in bank.provenance[0].detail
    bank.with_prior(["a", "b"], [[1, 1, 0, 0], [0, 0, 1, 1]]).save(tmp_path / "p")
    assert main(["concepts", "select", str(tmp_path / "p"), "--per-class", "1",
                 "--out", str(tmp_path / "sel")]) == 0
    assert len(ConceptBank.load(tmp_path / "sel")) == 2


def test_generate_file_then_filter(shared_data, tmp_path, capsys):
    src = shared_data / "concept-sets/sparsecbm/conceptnet_cifar10_filtered_new.txt"
    assert main(["concepts", "generate", "--source", "file", "--input", str(src),
                 "--out", str(tmp_path / "f")]) == 0
    assert main(["concepts", "filter", str(tmp_path / "f"), "--classes",
                 str(shared_data / "concept-sets/sparsecbm/cifar10_classes.txt"),
                 "--out", str(tmp_path / "g")]) == 0
    assert "removed by step" in capsys.readouterr().out
    kept = ConceptBank.load(tmp_path / "g")
    assert kept.metadata["filter_log"]["n_after"] == len(kept)
    assert all(len(t) <= 30 for t in kept.texts)


def test_missing_option_is_one_line_error(tmp_path, capsys):
    assert main(["concepts", "generate", "--source", "llm", "--out", str(tmp_path / "x")]) == 2
    assert "needs --model, --classes" in capsys.readouterr().err


def test_search_finds_the_images_that_show_a_concept_and_not_another(tmp_path, capsys):
    from cbm.concepts import ConceptBank

    rng = np.random.default_rng(0)
    dirs = np.linalg.qr(rng.normal(size=(16, 3)))[0].T  # three orthonormal concept directions
    X = rng.normal(scale=0.05, size=(40, 16)).astype(np.float32)
    X[:10] += dirs[0]                # rows 0-9 show "stripes"
    X[5:10] += dirs[1]               # rows 5-9 show "spots" too
    np.save(tmp_path / "emb.npy", X)
    ConceptBank(["stripes", "spots", "wings"], vectors=dirs).save(tmp_path / "bank")
    assert main(["concepts", "search", str(tmp_path / "bank"), "--embeddings", str(tmp_path / "emb.npy"),
                 "--concept", "stripes", "--not", "spots", "--top", "5"]) == 0
    out = capsys.readouterr().out
    hits = {int(line.split()[-1]) for line in out.splitlines()[1:]}
    assert hits == {0, 1, 2, 3, 4}
    assert "stripes and not spots" in out


def test_search_refuses_a_bank_from_another_space(tmp_path, capsys):
    from cbm.concepts import ConceptBank

    np.save(tmp_path / "emb.npy", np.zeros((4, 8), np.float32))
    ConceptBank(["a"], vectors=np.ones((1, 5))).save(tmp_path / "bank")
    assert main(["concepts", "search", str(tmp_path / "bank"), "--embeddings", str(tmp_path / "emb.npy"),
                 "--concept", "a"]) == 2
    assert "same encoder" in capsys.readouterr().err


# -- generate never saves an empty bank, never overwrites one without --force --------------------------
def _generate_llm(url, out, *extra):
    return main(["concepts", "generate", "--source", "llm", "--classes", "zebra", "--model", "m",
                 "--base-url", url, "--family", "lfcbm_important", "--out", str(out), *map(str, extra)])


@pytest.mark.parametrize("mode", ["empty", "null", "no_choices"])
def test_generate_refuses_an_empty_answer_and_keeps_the_good_bank(endpoint, tmp_path, capsys, mode):
    url, fake = endpoint
    out = tmp_path / "bank"
    assert _generate_llm(url, out, "--cache-dir", tmp_path / "c") == 0
    good = (out / "bank.json").read_text()
    fake.script([mode])
    assert _generate_llm(url, out, "--no-cache", "--force") == 2
    err = capsys.readouterr().err
    assert err.startswith("cbm concepts: error: The endpoint") and "nothing was cached" in err
    assert (out / "bank.json").read_text() == good


def test_generate_refuses_a_refusal_and_says_why(endpoint, tmp_path, capsys):
    url, fake = endpoint
    fake.responder = lambda prompt: "I'm sorry, but I can't help with that."
    assert _generate_llm(url, tmp_path / "bank", "--cache-dir", tmp_path / "c") == 2
    assert "yields no concepts (1 refusal" in capsys.readouterr().err
    assert not (tmp_path / "bank").exists() and not list((tmp_path / "c").rglob("*.json"))


def test_generate_reports_what_it_dropped(endpoint, tmp_path, capsys):
    url, fake = endpoint
    fake.responder = lambda prompt: "Sure!\n1. **stripes**\n2. a mane\nHope this helps you a lot."
    assert _generate_llm(url, tmp_path / "bank", "--no-cache") == 0
    captured = capsys.readouterr()
    assert "Dropped 2 item(s) from the answers: 2 prose outside the list" in captured.err
    assert ConceptBank.load(tmp_path / "bank").names == ["stripes", "a mane"]


def test_generate_never_overwrites_without_force(endpoint, tmp_path, capsys):
    url, fake = endpoint
    out = tmp_path / "bank"
    assert _generate_llm(url, out, "--no-cache") == 0
    n = len(fake.requests)
    assert _generate_llm(url, out, "--no-cache") == 2
    assert "is already a concept bank; pass --force" in capsys.readouterr().err
    assert len(fake.requests) == n  # refused before any request
    fake.responder = lambda prompt: '["new concept"]'
    assert _generate_llm(url, out, "--no-cache", "--force") == 0
    assert ConceptBank.load(out).names == ["new concept"]
    (tmp_path / "file").write_text("x")
    assert _generate_llm(url, tmp_path / "file", "--no-cache") == 2
    assert "is a file" in capsys.readouterr().err


def test_generate_from_an_empty_file_saves_nothing(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("\n  \n")
    assert main(["concepts", "generate", "--source", "file", "--input", str(tmp_path / "empty.txt"),
                 "--out", str(tmp_path / "bank")]) == 2
    assert "holds no concepts" in capsys.readouterr().err and not (tmp_path / "bank").exists()


def test_generate_is_bounded_by_timeout_retries_and_budget(endpoint, tmp_path, capsys):
    url, fake = endpoint
    fake.script(["hang"] * 10)
    assert _generate_llm(url, tmp_path / "b", "--no-cache", "--timeout", "0.3", "--max-retries", "1") == 2
    assert "timed out after 0.3 s, after 1 retries" in capsys.readouterr().err
    fake.script(["hang"] * 10)
    assert _generate_llm(url, tmp_path / "b", "--no-cache", "--timeout", "30", "--time-budget", "0.5") == 2
    assert "time budget of 0.5 s" in capsys.readouterr().err
    assert main(["concepts", "generate", "--source", "llm", "--classes", "z", "--model", "m",
                 "--no-cache", "--cache-dir", str(tmp_path), "--out", str(tmp_path / "q")]) == 2
    assert "contradict" in capsys.readouterr().err


@pytest.mark.slow
def test_search_with_engine_ray_prints_the_local_answer(tmp_path, capsys, ray_cluster):
    from PIL import Image

    from cbm.concepts import ConceptBank

    for i in range(12):
        (tmp_path / "imgs" / "a").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 16), (20 * i, 255 - 20 * i, 90)).save(tmp_path / "imgs" / "a" / f"{i}.png")
    assert main(["embed", str(tmp_path / "imgs"), "--image-size", "32", "--device", "cpu",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    entry, = (tmp_path / "cache" / "embeddings").glob("mobilenet_v2-*")
    ConceptBank(["warm", "cold"], vectors=np.random.default_rng(0).normal(size=(2, 1280))).save(
        tmp_path / "bank")
    capsys.readouterr()
    args = ["concepts", "search", str(tmp_path / "bank"), "--embeddings", str(entry),
            "--concept", "warm", "--not", "cold", "--top", "4"]
    assert main(args) == 0
    local = capsys.readouterr().out
    assert main([*args, "--engine", "ray", "--workers", "2"]) == 0
    assert capsys.readouterr().out == local and len(local.splitlines()) == 5
