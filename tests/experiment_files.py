"""Small experiment files for ``cbm run`` and ``run_experiment``: a quick PCBM on a synthetic world."""

from __future__ import annotations


def synthetic_experiment(name: str = "tiny", *, seeds=(0,), n_concepts: int = 8, n_samples: int = 120,
                         dim: int = 16, max_iter: int = 200, tables: str = "") -> str:
    """The text of an experiment file: PCBM (one lambda, ``max_iter`` iterations, on the CPU) on a
    synthetic 3-class concept world, run once per seed; ``tables``: the ones after [method] (such as
    [grid] and [evaluation])."""
    return f"""
name = "{name}"
seeds = {list(seeds)}

[data]
source = "synthetic"
params = {{ n_classes = 3, n_concepts = {n_concepts}, n_samples = {n_samples}, dim = {dim} }}

[method]
name = "pcbm"
params = {{ n_lambdas = 1, max_iter = {max_iter}, device = "cpu" }}
{tables}"""
