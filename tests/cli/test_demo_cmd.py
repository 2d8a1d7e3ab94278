"""`cbm demo` and `cbm --help`: argument parsing only; the pipeline itself is tested in tests/demo."""

import pytest

from cbm.cli import SUBCOMMANDS, build_parser, main


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in SUBCOMMANDS)


def test_demo_options_reach_the_pipeline_config(monkeypatch, tmp_path, capsys):
    import cbm.demo.pipeline as pipeline

    seen = {}

    class Result:
        model_dir = tmp_path

        def report(self):
            return "REPORT TABLE"

    def fake_run(cfg, progress=True, log=print):
        seen["cfg"], seen["progress"] = cfg, progress
        log("[   0 s] a stage")
        seen["printed"] = capsys.readouterr().out  # on stdout before the demo returns
        return Result()

    monkeypatch.setattr(pipeline, "run_demo", fake_run)
    assert main(["demo", "--quick", "--out", str(tmp_path), "--confounded-class", "Coat", "--n-train", "300",
                 "--no-progress"]) == 0
    cfg = seen["cfg"]
    assert (cfg.n_train, cfg.image_size, cfg.confound.confounded_class) == (300, 64, "Coat")
    assert cfg.out_dir == tmp_path and seen["progress"] is False
    assert seen["printed"] == "[   0 s] a stage\n"
    assert "REPORT TABLE" in capsys.readouterr().out


def test_unknown_confounded_class_is_one_line_with_suggestions(capsys):
    assert main(["demo", "--quick", "--confounded-class", "Shrt"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Did you mean 'Shirt'" in err


def test_parser_builds_without_importing_torch():
    import subprocess
    import sys

    code = "import sys; from cbm.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    assert build_parser().prog == "cbm"


def test_cct_option_trains_the_concept_centric_transformer_after_the_demo(monkeypatch, tmp_path):
    import cbm.demo.cct_tag as cct_tag
    import cbm.demo.pipeline as pipeline

    calls = []

    class Result:
        model_dir = tmp_path

        def report(self):
            return ""

    monkeypatch.setattr(pipeline, "run_demo", lambda cfg, progress=True, log=print: calls.append("demo") or Result())
    monkeypatch.setattr(cct_tag, "run_demo_cct",
                        lambda cfg, progress=True, log=print: calls.append(("cct", cfg.out_dir)))
    assert main(["demo", "--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    assert calls == ["demo"]  # opt-in: CCT needs a second, 224 px token embedding
    assert main(["demo", "--quick", "--out", str(tmp_path), "--no-progress", "--cct"]) == 0
    assert calls == ["demo", "demo", ("cct", tmp_path)]


def test_help_gives_the_benchmarked_times(capsys):
    import json
    from pathlib import Path

    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    bench = json.loads((Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "demo.json").read_text())
    cold, warm = bench["results"]["cold"]["wall_s"], bench["results"]["warm"]["wall_s"]
    assert f"about {round(cold, -1):.0f} s the first time" in text and f"{round(warm, -1):.0f} s after that" in text
    assert "about a minute" not in text
