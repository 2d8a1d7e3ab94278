"""`cbm run EXPERIMENT.toml`: run, check and dry-run experiment files from the command line."""

from pathlib import Path

import pytest
from experiment_files import synthetic_experiment

from cbm.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "experiments"

TINY = synthetic_experiment(tables='[evaluation]\nleakage = false\ninterventions = ["uncertainty"]\n')


def test_run_writes_results_and_prints_the_summary(tmp_path, capsys, one_thread):
    (tmp_path / "tiny.toml").write_text(TINY)
    assert main(["run", str(tmp_path / "tiny.toml"), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "| default | 1 |" in out and f"results written to {tmp_path / 'out'}" in out
    assert (tmp_path / "out" / "runs" / "default" / "seed_0" / "metrics.json").is_file()


def test_check_lists_missing_dataset_and_weights(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["run", str(EXAMPLES / "labo_cifar10_fewshot.toml"), "--check"]) == 1
    out = capsys.readouterr().out
    assert "5 grid point(s) x 3 seed(s), method labo" in out
    assert "missing: [data] root = '~/data'" in out and "missing: [encoder] pretrained" in out


def test_quick_example_is_ready_to_run(capsys):
    assert main(["run", str(EXAMPLES / "quick_synthetic.toml"), "--check"]) == 0
    assert "ready to run" in capsys.readouterr().out


def test_bad_file_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "bad.toml").write_text(TINY.replace("[method]", "[methd]"))
    assert main(["run", str(tmp_path / "bad.toml")]) == 2
    assert "Unknown section 'methd'" in capsys.readouterr().err


def test_a_gpu_this_machine_lacks_is_one_clear_error(tmp_path, capsys):
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    (tmp_path / "gpu.toml").write_text(TINY.replace('device = "cpu"', 'device = "cuda:7"'))
    assert main(["run", str(tmp_path / "gpu.toml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "Device 'cuda:7'" in err and "'cpu'" in err and "Traceback" not in err


@pytest.mark.parametrize("content, message", [
    (("a = " + "[" * 5000 + "]" * 5000 + "\n").encode(), "nested too deeply"),
    (("a = " + "{b = " * 3000 + "1" + "}" * 3000 + "\n").encode(), "nested too deeply"),
    (TINY.encode("utf-16"), "is not UTF-8 text (UTF-16 text at byte 0); save it as UTF-8"),
    (bytes(range(256)), "is not UTF-8 text (binary data at byte 128)"),
], ids=["deep-arrays", "deep-tables", "utf-16", "binary"])
def test_a_hostile_experiment_file_is_one_error_naming_it(tmp_path, capsys, content, message):
    (tmp_path / "x.toml").write_bytes(content)
    for extra in ([], ["--check"]):
        assert main(["run", str(tmp_path / "x.toml"), *extra]) == 2
        err = capsys.readouterr().err
        assert f"{str(tmp_path / 'x.toml')!r}" in err and message in err and "Traceback" not in err


@pytest.mark.parametrize("data, message", [
    ('source = "synthetc"', "Unknown data source 'synthetc'. Did you mean 'synthetic'"),
    ('source = "npz"', "[data] source = 'npz' needs path = PATH in [data]"),
    ('source = "images"\nroot = "."', "[data] source = 'images' needs an [encoder] name"),
], ids=["unknown-source", "npz-without-path", "images-without-encoder"])
def test_check_refuses_a_data_source_the_run_would_refuse_with_the_same_message(tmp_path, capsys, data, message):
    text = TINY.replace('source = "synthetic"\nparams = { n_classes = 3, n_concepts = 8, n_samples = 120, dim = 16 }',
                        data)
    assert text != TINY
    (tmp_path / "x.toml").write_text(text)
    assert main(["run", str(tmp_path / "x.toml"), "--check"]) == 2
    checked = capsys.readouterr()
    assert message in checked.err and "ready to run" not in checked.out
    assert main(["run", str(tmp_path / "x.toml"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.split(": error: ", 1)[1] == checked.err.split(": error: ", 1)[1]
