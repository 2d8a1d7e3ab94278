"""`cbm run EXPERIMENT.toml`: run, check and dry-run experiment files from the command line."""

from pathlib import Path

from cbm.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "experiments"

TINY = """
name = "tiny"
seeds = [0]
[data]
source = "synthetic"
params = { n_classes = 3, n_concepts = 8, n_samples = 120, dim = 16 }
[method]
name = "pcbm"
params = { n_lambdas = 1, max_iter = 200, device = "cpu" }
[evaluation]
leakage = false
interventions = ["uncertainty"]
"""


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
