"""Reproducible experiments: TOML configs, grids x seeds, the results folder, and paper protocols."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from experiment_files import synthetic_experiment

from cbm import experiment
from cbm.research.experiment import (
    ExperimentError,
    check_config,
    expand,
    load_config,
    protocol_splits,
    run_experiment,
    stand_in,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "experiments"

EVALUATION = """
[evaluation]
splits = ["test"]
leakage = false
interventions = ["random", "coop"]
"""
TINY = synthetic_experiment(seeds=(0, 1), tables='\n[grid]\n"method.params.lam" = [1e-3, 1e-2]\n' + EVALUATION)
ONE_RUN = synthetic_experiment(tables=EVALUATION)  # TINY with one seed and no grid


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Tiny problems on a shared CPU: one torch thread."""


def write(tmp_path, text=TINY, name="tiny.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def run_metrics(res, point: str = "default", seed: int = 0) -> dict:
    """The metrics.json of one run (grid point and seed) of an experiment's results."""
    return json.loads((res.folder / "runs" / point / f"seed_{seed}" / "metrics.json").read_text())


class TestConfig:
    def test_unknown_section_suggests_the_closest(self, tmp_path):
        with pytest.raises(ExperimentError, match="Unknown section 'method_params'.*'method'"):
            load_config(write(tmp_path, TINY + "\n[method_params]\nlam = 1\n"))

    def test_unknown_method(self, tmp_path):
        with pytest.raises(ExperimentError, match="Unknown method 'pcbn'.*'pcbm'"):
            load_config(write(tmp_path, TINY.replace('name = "pcbm"', 'name = "pcbn"')))

    def test_grid_values_must_be_a_list(self, tmp_path):
        with pytest.raises(ExperimentError, match="must be a non-empty list"):
            load_config(write(tmp_path, TINY.replace("[1e-3, 1e-2]", "1e-3")))

    def test_invalid_toml_names_the_file(self, tmp_path):
        with pytest.raises(ExperimentError, match="tiny.toml' is not valid TOML"):
            load_config(write(tmp_path, "name = \n"))

    def test_grid_expands_to_labelled_points(self, tmp_path):
        points = expand(load_config(write(tmp_path)))
        assert [label for label, _ in points] == ["lam=0.001", "lam=0.01"]
        assert points[1][1]["method"]["params"]["lam"] == 0.01
        assert points[0][1]["method"]["params"]["n_lambdas"] == 1

    def test_example_configs_are_valid(self):
        for path in sorted(EXAMPLES.glob("*.toml")):
            check_config(load_config(path), str(path))


class TestProtocolSplits:
    def splits(self, n=60):
        y = np.repeat(["a", "b", "c"], n // 3)
        return {"train": {"X": np.arange(n)[:, None].astype(np.float32), "y": y},
                "test": {"X": np.zeros((6, 1), np.float32), "y": np.repeat(["a", "b", "c"], 2)}}

    def test_few_shot_keeps_n_per_class_seeded(self):
        a = protocol_splits(self.splits(), {"shots": 4}, seed=0)
        b = protocol_splits(self.splits(), {"shots": 4}, seed=1)
        assert sorted(np.unique(a["train"]["y"], return_counts=True)[1]) == [4, 4, 4]
        assert not np.array_equal(a["train"]["X"], b["train"]["X"])
        assert len(a["test"]["y"]) == 6

    def test_validation_is_cut_from_train(self):
        out = protocol_splits(self.splits(), {"val": 0.2}, seed=0)
        assert len(out["val"]["y"]) == 12 and len(out["train"]["y"]) == 48
        assert not set(out["val"]["X"].ravel()) & set(out["train"]["X"].ravel())

    def test_an_unsplit_dataset_is_cut_by_fractions(self):
        s = self.splits()
        out = protocol_splits({"all": s["train"]}, {"train": 0.5, "val": 0.25, "test": 0.25}, seed=0)
        assert {k: len(v["y"]) for k, v in out.items()} == {"train": 30, "val": 15, "test": 15}


class TestRunExperiment:
    def test_writes_the_results_folder(self, tmp_path):
        res = run_experiment(write(tmp_path), tmp_path / "out", log=lambda *_: None)
        out = res.folder
        for name in ("config.json", "experiment.toml", "environment.json", "summary.json", "summary.md",
                     "summary.html", "summary.plotly.json"):
            assert (out / name).is_file(), name
        env = json.loads((out / "environment.json").read_text())
        assert env["packages"]["torch"] and env["python"]
        run = run_metrics(res, "lam=0.01", seed=1)
        assert run["seed"] == 1 and run["point"] == {"method.params.lam": 0.01}
        assert set(run["concepts"]["test"]["interventions"]["policies"]) == {"random", "coop"}
        assert (out / "runs" / "lam=0.01" / "seed_1" / "interventions_test.svg").is_file()
        acc = json.loads((out / "summary.json").read_text())["points"]["lam=0.001"]["metrics"]["test/accuracy"]
        assert acc["n"] == 2 and acc["mean"] == pytest.approx(np.mean(acc["values"]))
        assert "| lam=0.001 | 2 |" in (out / "summary.md").read_text()

    def test_same_file_twice_gives_identical_metrics(self, tmp_path):
        text = ONE_RUN.replace("seeds = [0]", "seeds = [3]")
        a = run_experiment(write(tmp_path), tmp_path / "a", log=lambda *_: None)
        b = run_experiment(write(tmp_path, text, "tiny.toml"), tmp_path / "b", log=lambda *_: None)
        c = run_experiment(write(tmp_path, text, "tiny.toml"), tmp_path / "c", log=lambda *_: None)
        assert len(a.runs) == 4

        def strip(rows):
            return [{k: v for k, v in r.items() if not k.startswith("fit")} for r in rows]

        assert strip(b.runs) == strip(c.runs)

    def test_tensorboard_is_skipped_cleanly_when_absent(self, tmp_path, monkeypatch):
        monkeypatch.setattr(experiment, "_tensorboard", lambda folder: None)
        res = run_experiment(write(tmp_path, ONE_RUN), tmp_path / "out", log=lambda *_: None)
        assert "TensorBoard event files skipped" in res.notes[0]
        assert not (res.folder / "tensorboard").exists()

    def test_tensorboard_gets_scalars_and_curves(self, tmp_path, monkeypatch):
        logged = []

        class Writer:
            def __init__(self, log_dir):
                self.log_dir = log_dir

            def add_scalar(self, tag, value, step):
                logged.append((Path(self.log_dir).name, tag, step))

            def flush(self):
                pass

            def close(self):
                pass

        monkeypatch.setattr(experiment, "_tensorboard", lambda folder: experiment._TensorBoard(folder, Writer))
        run_experiment(write(tmp_path, ONE_RUN), tmp_path / "out", log=lambda *_: None)
        tags = {t for _, t, _ in logged}
        assert "test/accuracy" in tags and "test/intervention/coop" in tags

    def test_real_tensorboard_event_files(self, tmp_path):
        pytest.importorskip("tensorboard")
        res = run_experiment(write(tmp_path, ONE_RUN), tmp_path / "out", log=lambda *_: None)
        assert list((res.folder / "tensorboard").rglob("events.out.tfevents.*"))


class FakeEncoder:
    """A stand-in image/text encoder: colour statistics and hashed words (no weights, instant)."""

    name, dim, fingerprint = "fake", 8, "fake-encoder-v1"

    def encode_images(self, images, batch_size=64):
        out = []
        for im in images:
            a = np.asarray(im.convert("RGB"), np.float32) / 255
            out.append(np.concatenate([a.mean((0, 1)), a.std((0, 1)), [1.0, 0.0]]))
        return np.asarray(out, np.float32)

    def encode_text(self, texts, batch_size=256):
        rng = [np.random.default_rng(sum(map(ord, t))) for t in texts]
        return np.asarray([r.standard_normal(self.dim) for r in rng], np.float32)


def fake_encoder_experiment(tmp_path, monkeypatch, name: str, data: str, tables: str) -> Path:
    """Write ``<name>.toml``: a quick PCBM on the concepts of ``concepts.txt``, with ``FakeEncoder``
    patched in for the encoder; ``data``: the lines of its [data] table; ``tables``: the ones after [method]."""
    monkeypatch.setattr("cbm.encoders.create_encoder", lambda name, pretrained=None, **kw: FakeEncoder())
    return write(tmp_path, f"""
name = "{name}"
cache_dir = "{tmp_path / 'cache'}"
[data]
{data}
[encoder]
name = "fake"
[concepts]
source = "file"
path = "concepts.txt"
[method]
name = "pcbm"
params = {{ n_lambdas = 1, max_iter = 100, device = "cpu" }}
{tables}
""", f"{name}.toml")


def test_image_folder_source_with_a_concept_file(tmp_path, monkeypatch):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls, colour in (("red", (220, 20, 20)), ("blue", (20, 20, 220))):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(12):
            px = np.clip(np.array(colour) + rng.integers(-30, 30, (8, 8, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(px).save(tmp_path / "imgs" / cls / f"{i}.png")
    (tmp_path / "concepts.txt").write_text("red feathers\nblue feathers\nround shape\n")
    path = fake_encoder_experiment(tmp_path, monkeypatch, "images", data='source = "images"\nroot = "imgs"',
                                   tables="[splits]\ntrain = 0.5\nval = 0.25\ntest = 0.25")
    run = run_metrics(run_experiment(path, tmp_path / "out", log=lambda *_: None))
    assert run["n_train"] == 12 and run["splits"]["test"]["n"] == 6
    assert run["sparsity"]["n_concepts"] == 3


class TestPaperProtocols:
    @pytest.mark.parametrize("name", ["labo_cifar10_fewshot", "lf_cbm_cub"])
    def test_missing_data_fails_with_what_to_download(self, name, monkeypatch, tmp_path):
        monkeypatch.setenv("HOME", str(tmp_path))  # no ~/data, no ~/weights
        with pytest.raises(ExperimentError, match=r"cannot run here; it needs:(.|\n)*not found(.|\n)*--dry-run"):
            run_experiment(EXAMPLES / f"{name}.toml", tmp_path / "out")

    def test_stand_in_keeps_the_protocol(self):
        cfg = stand_in(load_config(EXAMPLES / "labo_cifar10_fewshot.toml"))
        assert cfg["data"]["source"] == "synthetic" and cfg["method"]["name"] == "labo"
        assert cfg["grid"]["splits.shots"] == [1, 2, 4, 8] and cfg["seeds"] == [0]

    def test_dry_run_of_the_lf_cbm_protocol(self, tmp_path, monkeypatch):
        monkeypatch.setenv("HOME", str(tmp_path))
        cfg = load_config(EXAMPLES / "lf_cbm_cub.toml")
        cfg["method"]["params"].update(proj_steps=250, max_iter=200, device="cpu")
        res = run_experiment(cfg, tmp_path / "out", dry_run=True, log=lambda *_: None)
        run = run_metrics(res)
        assert res.summary["dry_run"] and res.folder.name == "out"
        assert run["sparsity"]["n_concepts"] > 6  # the Label-free CBM filters kept most concepts
        assert run["splits"]["test"]["accuracy"] > 0.5  # 4 classes: chance is 0.25


def test_cub_source_reads_split_file_and_attribute_annotations(tmp_path, monkeypatch):
    """A tiny CUB-200-2011 layout: images, train_test_split.txt, attributes; concepts named as attributes."""
    from PIL import Image

    base = tmp_path / "CUB_200_2011"
    (base / "attributes").mkdir(parents=True)
    (base / "attributes" / "attributes.txt").write_text("1 has_wing_color::red\n2 has_wing_color::blue\n")
    rng = np.random.default_rng(0)
    images, split, labels = [], [], []
    n = 0
    for c, (cls, colour) in enumerate((("001.Red_bird", (220, 20, 20)), ("002.Blue_bird", (20, 20, 220)))):
        (base / "images" / cls).mkdir(parents=True)
        for i in range(8):
            n += 1
            px = np.clip(np.array(colour) + rng.integers(-30, 30, (8, 8, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(px).save(base / "images" / cls / f"b_{i}.jpg")
            images.append(f"{n} {cls}/b_{i}.jpg")
            split.append(f"{n} {int(i < 5)}")
            labels += [f"{n} 1 {int(c == 0)} 4 1.5", f"{n} 2 {int(c == 1)} 3 2.5"]
    (base / "images.txt").write_text("\n".join(images) + "\n")
    (base / "train_test_split.txt").write_text("\n".join(split) + "\n")
    (base / "attributes" / "image_attribute_labels.txt").write_text("\n".join(labels) + "\n")
    (tmp_path / "concepts.txt").write_text("has_wing_color::red\nhas_wing_color::blue\n")
    path = fake_encoder_experiment(tmp_path, monkeypatch, "cub", data='source = "cub"\nroot = "CUB_200_2011"',
                                   tables='[evaluation]\nleakage = false\ninterventions = ["random"]')
    run = run_metrics(run_experiment(path, tmp_path / "out", log=lambda *_: None))
    assert run["n_train"] == 10 and run["splits"]["test"]["n"] == 6  # train_test_split.txt: 5 + 3 per class
    assert run["concepts"]["test"]["n_annotated_concepts"] == 2
    assert run["concepts"]["test"]["interventions"]["k"] == [0, 1, 2]
