"""The command line and its files: a bad --out is refused before any work, a closed pipe is quiet."""

import os
import subprocess
import sys

import pytest

from cbm.cli import main


def test_train_refuses_an_out_path_that_is_a_file_before_training(tmp_path, monkeypatch, capsys):
    import cbm.data

    def no_training(*a, **k):
        raise AssertionError("training data was loaded although --out is a file")

    monkeypatch.setattr(cbm.data, "load_training_data", no_training)
    (tmp_path / "notes.txt").write_text("keep me")
    assert main(["train", "--method", "labo", "--world", "--out", str(tmp_path / "notes.txt")]) == 2
    assert "notes.txt' is a file; pass a folder path" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("argv", [["--help"], ["concepts", "show", "BANK"]])
def test_output_into_a_closed_pipe_ends_quietly(tmp_path, argv):
    from cbm.bank import ConceptBank

    ConceptBank([f"concept {i}" for i in range(2000)]).save(tmp_path / "bank")
    argv = [str(tmp_path / "bank") if a == "BANK" else a for a in argv]
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line is written, as with `| head -1`
    try:
        proc = subprocess.run([sys.executable, "-m", "cbm", *argv], stdout=write, stderr=subprocess.PIPE,
                              timeout=60, env={**os.environ, "PYTHONUNBUFFERED": "0"})
    finally:
        os.close(write)
    assert "Error" not in proc.stderr.decode() and "Traceback" not in proc.stderr.decode()
    assert proc.returncode == 141  # 128 + SIGPIPE, as Unix tools end


def test_a_file_where_a_model_directory_is_expected_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "afile.txt").write_text("not a model")
    for argv in (["edit", "afile.txt", "history"], ["edit", "afile.txt", "undo"]):
        assert main([argv[0], str(tmp_path / argv[1]), *argv[2:]]) == 2
        err = capsys.readouterr().err
        assert f"{str(tmp_path / 'afile.txt')!r} is a file" in err and "Traceback" not in err
    assert (tmp_path / "afile.txt").read_text() == "not a model"
