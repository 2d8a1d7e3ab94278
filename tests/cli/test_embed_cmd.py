"""`cbm embed`: folder or manifest -> cached embeddings, summary, cache hit on the second run."""

import pytest
from PIL import Image

from cbm.cli import main


@pytest.fixture
def folder(tmp_path):
    for cls, color in (("red", (220, 20, 20)), ("blue", (20, 20, 220))):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (20 + i, 20), color).save(tmp_path / "imgs" / cls / f"{i}.png")
    return tmp_path / "imgs"


def _embed(*args):
    return main(["embed", *map(str, args), "--image-size", "32", "--batch-size", "4", "--device", "cpu"])


def test_first_run_writes_the_cache_second_run_is_a_hit(folder, tmp_path, capsys):
    assert _embed(folder, "--cache-dir", tmp_path / "cache") == 0
    out = capsys.readouterr().out
    assert "embedded 6 of 6 images (dim 1280)" in out and "images/s" in out
    manifests = list((tmp_path / "cache" / "embeddings").glob("mobilenet_v2-*/manifest.json"))
    assert len(manifests) == 1 and f"cache: {manifests[0].parent}" in out
    assert _embed(folder, "--cache-dir", tmp_path / "cache") == 0
    assert "cache hit: 6 embeddings" in capsys.readouterr().out


def test_cache_dir_defaults_to_env(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CBM_CACHE_DIR", str(tmp_path / "envcache"))
    assert _embed(folder, "--no-progress") == 0
    assert str(tmp_path / "envcache") in capsys.readouterr().out


def test_unreadable_images_are_counted(folder, tmp_path, capsys):
    (folder / "red" / "broken.png").write_bytes(b"\x89PNG not really")
    (folder / "red" / "readme.txt").write_text("hi")
    assert _embed(folder, "--cache-dir", tmp_path / "c") == 0
    captured = capsys.readouterr()
    assert "embedded 6 of 7" in captured.out and "skipped 1 unreadable" in captured.out
    assert "broken.png" in captured.out and "readme.txt" in captured.err


def test_manifest_source(folder, tmp_path, capsys):
    (tmp_path / "m.csv").write_text("path,label\nred/0.png,red\nblue/1.png,blue\n")
    assert _embed(tmp_path / "m.csv", "--root", folder, "--cache-dir", tmp_path / "c") == 0
    assert "embedded 2 of 2" in capsys.readouterr().out


def test_missing_folder_is_one_clear_error(tmp_path, capsys):
    assert _embed(tmp_path / "nowhere", "--cache-dir", tmp_path / "c") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cbm embed: error:" in err and "nowhere" in err


def test_unknown_encoder_suggests_names(folder, tmp_path, capsys):
    assert main(["embed", str(folder), "--encoder", "mobilenet", "--cache-dir", str(tmp_path)]) == 2
    assert "Did you mean 'mobilenet_v2'" in capsys.readouterr().err


def test_a_decompression_bomb_is_skipped_and_counted(folder, tmp_path, capsys, write_png_bomb):
    write_png_bomb(folder / "red" / "bomb.png")
    Image.new("RGB", (200, 200)).save(folder / "blue" / "large.png")
    assert _embed(folder, "--cache-dir", tmp_path / "cache", "--max-pixels", "10000") == 0
    out = capsys.readouterr().out
    assert "embedded 6 of 8 images" in out and "skipped 2 unreadable image(s)" in out
    assert "bomb.png" in out and "large.png" in out


@pytest.mark.slow
def test_engine_ray_writes_the_cache_a_local_run_writes(folder, tmp_path, capsys, one_thread):
    """`--engine ray` starts a local Ray cluster (2 workers), fills the shards, and stops it; with
    as many torch threads (1) as the local run, the shard is the same bit for bit."""
    assert _embed(folder, "--cache-dir", tmp_path / "local") == 0
    capsys.readouterr()
    assert _embed(folder, "--cache-dir", tmp_path / "ray", "--engine", "ray", "--workers", "2") == 0
    assert "embedded 6 of 6 images (dim 1280)" in capsys.readouterr().out
    local, = (tmp_path / "local" / "embeddings").glob("mobilenet_v2-*")
    ray_entry = tmp_path / "ray" / "embeddings" / local.name
    assert (ray_entry / "manifest.json").is_file()
    assert (ray_entry / "shard-00000.npy").read_bytes() == (local / "shard-00000.npy").read_bytes()


def test_engine_ray_without_ray_is_one_message_naming_the_install(folder, tmp_path, capsys,
                                                                  monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert _embed(folder, "--cache-dir", tmp_path, "--engine", "ray") == 2
    err = capsys.readouterr().err
    assert "pip install 'cbmkit[ray]'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "embeddings").exists()  # refused before any work
