"""bench_cct.py's goal check: every goal of issue 15 is stated with its value, and a missed goal
carries the reason it falls short."""

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_cct.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_cct", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _models(unseen: float) -> dict:
    tag = {"pointing_game": 1.0, "spread_stamped": 0.7, "spread_untagged": 0.9,
           "unseen_corner": {"pointing_game": unseen}}
    return {"cct": {"accuracy_test": 0.88, "s_per_epoch": 3.0, "tag": tag},
            "linear-probe (pooled tokens)": {"accuracy_test": 0.885}}


def test_goals_met_carry_no_shortfall_and_a_missed_goal_says_why():
    bench = _bench()
    met = bench.goals(_models(unseen=0.95))
    assert all(met[k]["met"] for k in bench.GOALS) and not any("shortfall" in g for g in met.values())
    missed = bench.goals(_models(unseen=0.5), reasons={"pointing_game_unseen_corner": "because"})
    assert missed["pointing_game_unseen_corner"] == {"goal": bench.GOALS["pointing_game_unseen_corner"],
                                                     "value": 0.5, "met": False, "shortfall": "because"}
    assert missed["s_per_epoch_cpu"]["value"] == 3.0
