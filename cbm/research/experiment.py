"""Reproducible experiments from a TOML file: data, encoder, concepts, method, splits, seeds, a grid.

    name = "pcbm-synthetic"
    seeds = [0, 1, 2]

    [data]                      # synthetic | npz | store | images | torchvision | cub | fashion-mnist
    source = "synthetic"
    params = { n_classes = 5, n_concepts = 20 }

    [concepts]                  # data (the data's bank) | bank (a ConceptBank folder) | file (one per line)
    source = "data"

    [method]
    name = "pcbm"
    params = { lam = 1e-3 }

    [splits]                    # how the training data is cut: val fraction, few-shot `shots` per class
    val = 0.2

    [grid]                      # dotted keys into this file; every combination x every seed is run
    "method.params.lam" = [1e-4, 1e-3]

    [evaluation]
    interventions = ["random", "uncertainty", "coop"]

:func:`run_experiment` writes a results folder: ``config.json`` (resolved), ``experiment.toml`` (as
given), ``environment.json`` (Python, platform, package versions, git commit), one
``runs/<point>/seed_<s>/metrics.json`` per run, ``summary.json`` (mean ± std over seeds per grid
point), ``summary.md`` and charts (HTML, JSON, SVG). TensorBoard event files are added when the
``tensorboard`` package is installed (``pip install cbmkit[tensorboard]``). Paths in the file are
relative to the file. ``dry_run=True`` swaps the data for a tiny stand-in and checks the whole path.
"""

from __future__ import annotations

import copy
import itertools
import json
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cbm.exceptions import CBMError, unknown_name_message

SECTIONS = ("name", "description", "reference", "seeds", "output", "cache_dir", "data", "encoder",
            "concepts", "method", "splits", "grid", "evaluation")
#: scalar metrics summarised as mean ± std over seeds
SUMMARY_KEYS = ("accuracy", "nec", "anec", "concept_auc", "concept_accuracy", "leakage", "intervention_area")


class ExperimentError(CBMError, ValueError):
    """An experiment file is invalid or cannot run."""


# -- config ------------------------------------------------------------------------------------------
def load_config(path: str | Path) -> dict[str, Any]:
    """Read and check an experiment TOML file; returns the config dict (with ``_path``)."""
    import tomllib

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Experiment file {str(path)!r} not found.")
    raw = path.read_bytes()
    try:
        cfg = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        kind = "UTF-16 text" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "binary data"
        raise ExperimentError(f"Experiment file {str(path)!r} is not UTF-8 text ({kind} at byte {e.start}); "
                              "save it as UTF-8 TOML.") from None
    except tomllib.TOMLDecodeError as e:
        raise ExperimentError(f"{str(path)!r} is not valid TOML: {e}.") from None
    except RecursionError:
        raise ExperimentError(f"Experiment file {str(path)!r} is nested too deeply to be an experiment "
                              "file (damaged?); check its contents.") from None
    check_config(cfg, str(path))
    cfg["_path"] = str(path.resolve())
    return cfg


def check_config(cfg: dict[str, Any], where: str = "experiment") -> None:
    """Raise one clear :class:`ExperimentError` for unknown sections, a missing method or a bad grid."""
    for key in cfg:
        if key not in SECTIONS and not key.startswith("_"):
            raise ExperimentError(f"{where}: " + unknown_name_message("section", key, SECTIONS))
    for key in ("data", "method"):
        if not isinstance(cfg.get(key), dict):
            raise ExperimentError(f"{where}: needs a [{key}] table (see examples/experiments/).")
    if "name" not in cfg["method"]:
        raise ExperimentError(f"{where}: [method] needs name = one of the cbm train methods, e.g. 'pcbm'.")
    from cbm.models import list_methods

    if not isinstance(cfg["method"]["name"], str) or cfg["method"]["name"] not in list_methods():
        raise ExperimentError(f"{where}: " + unknown_name_message("method", str(cfg["method"]["name"]), list_methods()))
    seeds = cfg.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ExperimentError(f"{where}: seeds must be a non-empty list of integers; got {seeds!r}.")
    if not isinstance(cfg.get("grid") or {}, dict):
        raise ExperimentError(f"{where}: [grid] must be a table of \"section.key\" = [values]; got {cfg['grid']!r}.")
    for key, values in (cfg.get("grid") or {}).items():
        if not isinstance(values, list) or not values:
            raise ExperimentError(f"{where}: [grid] {key!r} must be a non-empty list of values; got {values!r}.")
        _get(cfg, key, where)  # the section must exist


def _get(cfg: dict[str, Any], dotted: str, where: str) -> Any:
    node: Any = cfg
    parts = dotted.split(".")
    if parts[0] not in SECTIONS:
        raise ExperimentError(f"{where}: [grid] key {dotted!r}: " + unknown_name_message("section", parts[0], SECTIONS))
    for p in parts[:-1]:
        node = node.setdefault(p, {}) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            raise ExperimentError(f"{where}: [grid] key {dotted!r} does not point into a table.")
    return node.get(parts[-1])


def _set(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    node = cfg
    *head, last = dotted.split(".")
    for p in head:
        node = node.setdefault(p, {})
    node[last] = value


def expand(cfg: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Grid points ``(label, resolved config)``: one per combination of the [grid] values."""
    grid = cfg.get("grid") or {}
    keys = list(grid)
    out = []
    for combo in itertools.product(*(grid[k] for k in keys)) if keys else [()]:
        point = copy.deepcopy({k: v for k, v in cfg.items() if k != "grid"})
        for k, v in zip(keys, combo, strict=True):
            _set(point, k, v)
        label = "_".join(f"{k.split('.')[-1]}={_short(v)}" for k, v in zip(keys, combo, strict=True)) or "default"
        point["_point"] = dict(zip(keys, combo, strict=True))
        out.append((_safe(label), point))
    return out


def _short(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_=.+" else "-" for c in label)


# -- one run ----------------------------------------------------------------------------------------------
def run_once(cfg: dict[str, Any], seed: int, base: Path, memo: dict | None = None) -> tuple[Any, dict[str, Any]]:
    """Fit and evaluate one grid point with one seed: ``(model, metrics dict)``."""
    from cbm.data.training import fit_arguments
    from cbm.metrics import report
    from cbm.models import create_model, get_model_class
    from cbm.research._experiment_data import prepare
    from cbm.research.evaluation import evaluate_splits

    key = json.dumps([cfg.get("data"), cfg.get("encoder"), cfg.get("concepts"), seed
                      if (cfg["data"].get("source") == "synthetic" or cfg["data"].get("source") in ("npz", "store"))
                      else None], sort_keys=True, default=str)
    memo = {} if memo is None else memo
    if key not in memo:
        memo[key] = prepare(cfg, seed, base)
    prep = memo[key]
    splits = protocol_splits(prep.splits, cfg.get("splits") or {}, seed)
    method = cfg["method"]
    params = dict(method.get("params") or {})
    names = get_model_class(method["name"])().get_params()
    if "concepts" in names:
        params["concepts"] = prep.bank
    for k, v in (("random_state", seed), ("verbose", False)):
        if k in names:
            params.setdefault(k, v)
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise ExperimentError(f"[method] params {unknown} are not parameters of {method['name']!r}; it accepts "
                              f"{sorted(names)}.")
    model = create_model(method["name"], **params)
    extras = {"class_embeddings": prep.class_embeddings}
    t0 = time.perf_counter()
    model.fit(splits["train"]["X"], splits["train"]["y"], **fit_arguments(model, splits, extras))
    fit_s = time.perf_counter() - t0
    ev_cfg = cfg.get("evaluation") or {}
    eval_names = ev_cfg.get("splits") or [n for n in splits if n != "train"]
    missing = [n for n in eval_names if n not in splits]
    if missing:
        raise ExperimentError(f"[evaluation] splits {missing} do not exist; this data has {list(splits)}.")
    anec_k = ev_cfg.get("anec_k", [5])
    metrics = report(model, {n: splits[n] for n in eval_names}, anec_k=anec_k)
    metrics["fit_seconds"] = round(fit_s, 3)
    metrics["n_train"] = int(len(splits["train"]["y"]))
    anns = {n: prep.annotations[n].for_ids(splits[n]["ids"]) for n in eval_names
            if n in prep.annotations and "ids" in splits[n]}
    if "val" in splits and "val" in prep.annotations and "ids" in splits["val"]:
        anns["val"] = prep.annotations["val"].for_ids(splits["val"]["ids"])
    if anns and ev_cfg.get("concepts", True) and hasattr(model, "concepts_"):
        pols = ev_cfg.get("interventions") or None
        evals = evaluate_splits(model, {n: splits[n] for n in anns}, anns, anec_k=anec_k, interventions=pols,
                                leakage=ev_cfg.get("leakage", True), random_state=seed)
        metrics["concepts"] = {n: ev.to_dict() for n, ev in evals.items() if n in eval_names}
    return model, metrics


def protocol_splits(splits: dict[str, dict[str, np.ndarray]], spec: dict[str, Any], seed: int
                    ) -> dict[str, dict[str, np.ndarray]]:
    """Apply ``[splits]``: cut an unsplit dataset (``train``/``val``/``test`` fractions), hold out
    ``val`` from train, and keep ``shots`` images per class of train (few-shot), all seeded."""
    from cbm.data.splits import make_splits

    out = dict(splits)
    if "all" in out:
        whole = out.pop("all")
        fr = {k: float(spec.get(k, d)) for k, d in (("train", 0.6), ("val", 0.2), ("test", 0.2))}
        parts = make_splits(len(whole["y"]), fr, seed=seed, stratify=whole["y"])
        out.update({n: _take(whole, idx) for n, idx in parts.items()})
    elif "val" in spec and "val" not in out:
        parts = make_splits(len(out["train"]["y"]), {"val": float(spec["val"]), "train": 1 - float(spec["val"])},
                            seed=seed, stratify=out["train"]["y"])
        train = out["train"]
        out["train"], out["val"] = _take(train, parts["train"]), _take(train, parts["val"])
    if spec.get("shots"):
        shots = int(spec["shots"])
        y = out["train"]["y"]
        rng = np.random.default_rng(seed)
        idx = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:shots] for c in np.unique(y)]))
        out["train"] = _take(out["train"], idx)
    return out


def _take(split: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: np.asarray(v)[idx] for k, v in split.items()}


# -- many runs ------------------------------------------------------------------------------------------
@dataclass
class ExperimentResult:
    """What :func:`run_experiment` wrote: the folder, per-run metrics and the summary."""

    folder: Path
    runs: list[dict[str, Any]]
    summary: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def table(self) -> str:
        """mean ± std per grid point and metric, as a Markdown table."""
        return summary_markdown(self.summary)


def check_paths(cfg: dict[str, Any], base: Path) -> list[str]:
    """Problems with the files one grid point needs (dataset, weights, concept file), as messages; [] when fine.

    Relative paths resolve against ``base`` (the config file's folder)."""
    from cbm.research._experiment_data import check_paths as problems

    return problems(cfg, base)


def run_experiment(config: str | Path | dict[str, Any], out: str | Path | None = None, *, dry_run: bool = False,
                   log: Any = print) -> ExperimentResult:
    """Run every grid point x seed of an experiment and write the results folder (see module doc)."""
    cfg = load_config(config) if not isinstance(config, dict) else copy.deepcopy(config)
    if isinstance(config, dict):
        check_config(cfg)
    base = Path(cfg.get("_path", Path.cwd() / "experiment.toml")).parent
    name = str(cfg.get("name") or Path(cfg.get("_path", "experiment")).stem)
    if dry_run:
        cfg = stand_in(cfg)
    problems = [] if dry_run else [p for _, point in expand(cfg) for p in check_paths(point, base)]
    if problems:
        raise ExperimentError(f"Experiment {name!r} cannot run here; it needs:\n  - " +
                              "\n  - ".join(dict.fromkeys(problems)) +
                              "\nRun `cbm run FILE --dry-run` to check the rest of the path on a tiny stand-in.")
    folder = Path(out) if out else _resolve_out(cfg, base, name, dry_run)
    folder.mkdir(parents=True, exist_ok=True)
    _write_header(folder, cfg, config)
    writer = _tensorboard(folder)
    notes = [] if writer else ["TensorBoard event files skipped: the `tensorboard` package is not installed "
                               "(pip install 'cbmkit[tensorboard]')"]
    runs, memo = [], {}
    for label, point in expand(cfg):
        for seed in cfg.get("seeds", [0]):
            t0 = time.perf_counter()
            _, metrics = run_once(point, int(seed), base, memo)
            metrics["seed"], metrics["point"] = int(seed), point["_point"]
            run_dir = folder / "runs" / label / f"seed_{seed}"
            _write_json(run_dir / "metrics.json", metrics)
            _run_charts(run_dir, metrics)
            row = {"point": label, "params": point["_point"], "seed": int(seed), **flat_metrics(metrics)}
            runs.append(row)
            if writer:
                writer(label, int(seed), row, metrics)
            shown = [k for k in row if k.endswith(("/accuracy", "/concept_auc")) or k == "nec"][:5]
            log(f"{label} seed {seed}: " + ", ".join(f"{k} {row[k]:.3f}" for k in shown)
                + f" ({time.perf_counter() - t0:.1f} s)")
    summary = summarise(runs)
    summary["name"], summary["dry_run"] = name, bool(dry_run)
    _write_json(folder / "summary.json", summary)
    (folder / "summary.md").write_text(f"# {name}\n\n" + summary_markdown(summary) + "\n")
    _summary_charts(folder, summary, cfg)
    if writer:
        writer.close()
    return ExperimentResult(folder, runs, summary, notes)


def _resolve_out(cfg: dict[str, Any], base: Path, name: str, dry_run: bool) -> Path:
    from cbm.research._experiment_data import resolve

    folder = resolve(cfg["output"], base) if cfg.get("output") else Path("runs") / "experiments" / _safe(name)
    return folder.with_name(folder.name + "-dry-run") if dry_run else folder


def flat_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The scalar metrics of one run: ``<split>/accuracy``, ``nec``, ``<split>/anec_<k>``, concept
    AUC/accuracy, leakage and intervention areas."""
    out: dict[str, float] = {"nec": float(metrics["sparsity"]["nec"])}
    for split, s in metrics["splits"].items():
        out[f"{split}/accuracy"] = float(s["accuracy"])
        out.update({f"{split}/anec_{k}": float(v) for k, v in s["anec"].items()})
    for split, c in (metrics.get("concepts") or {}).items():
        for key, name in (("mean_concept_auc", "concept_auc"), ("mean_concept_accuracy", "concept_accuracy")):
            if c.get(key) is not None:
                out[f"{split}/{name}"] = float(c[key])
        if c.get("leakage"):
            out[f"{split}/leakage"] = float(c["leakage"]["leakage"])
        for pol, d in ((c.get("interventions") or {}).get("policies") or {}).items():
            out[f"{split}/intervention_area/{pol}"] = float(d["area"])
    out["fit_seconds"] = float(metrics.get("fit_seconds", 0.0))
    return out


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, std and n over seeds of every scalar metric, per grid point."""
    points: dict[str, Any] = {}
    for row in runs:
        p = points.setdefault(row["point"], {"params": row["params"], "seeds": [], "metrics": {}})
        p["seeds"].append(row["seed"])
        for k, v in row.items():
            if isinstance(v, float):
                p["metrics"].setdefault(k, []).append(v)
    for p in points.values():
        p["metrics"] = {k: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                            "n": len(v), "values": v} for k, v in p["metrics"].items()}
    return {"points": points}


def summary_markdown(summary: dict[str, Any]) -> str:
    """Markdown table: one row per grid point, mean ± std of the main metrics."""
    points = summary["points"]
    keys = sorted({k for p in points.values() for k in p["metrics"]
                   if not k.startswith("fit") and any(s in k for s in SUMMARY_KEYS)},
                  key=lambda k: (k.split("/")[0] != "test", k))
    keys = keys[:8]
    lines = ["| point | seeds | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for label, p in points.items():
        cells = [f"{p['metrics'][k]['mean']:.3f} ± {p['metrics'][k]['std']:.3f}" if k in p["metrics"] else "-"
                 for k in keys]
        lines.append(f"| {label} | {len(p['seeds'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- writing ---------------------------------------------------------------------------------------------
def _write_json(path: Path, obj: Any) -> None:
    from cbm._io import atomic_write_json
    from cbm.research.evaluation import to_jsonable

    atomic_write_json(path, to_jsonable(obj))


def _write_header(folder: Path, cfg: dict[str, Any], given: Any) -> None:
    resolved = {k: v for k, v in cfg.items() if not k.startswith("_")}
    _write_json(folder / "config.json", resolved)
    if not isinstance(given, dict):
        (folder / "experiment.toml").write_text(Path(given).expanduser().read_text(encoding="utf-8"))
    _write_json(folder / "environment.json", environment())


def environment() -> dict[str, Any]:
    """Python, platform, CPU/GPU, package versions and the git commit of the working tree."""
    import importlib.metadata as md
    import os
    import subprocess

    versions = {}
    for pkg in ("cbmkit", "torch", "torchvision", "numpy", "scikit-learn", "pandas", "open_clip_torch",
                "plotly", "safetensors", "tensorboard"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    env: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform(),
                           "machine": platform.machine(), "cpu_count": os.cpu_count(), "packages": versions}
    try:
        import torch

        env["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        env["torch_threads"] = torch.get_num_threads()
    except Exception:  # pragma: no cover - torch is a dependency
        env["cuda"] = None
    try:
        root = Path(__file__).resolve().parent.parent
        env["git_commit"] = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                           text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        env["git_commit"] = None
    return env


def _run_charts(run_dir: Path, metrics: dict[str, Any]) -> None:
    """Intervention curves of one run as plotly JSON and SVG."""
    from cbm.research.interventions import InterventionCurves

    for split, c in (metrics.get("concepts") or {}).items():
        iv = c.get("interventions")
        if not iv:
            continue
        curves = InterventionCurves(np.asarray(iv["k"]), {p: np.asarray(d["accuracy"]) for p, d in iv["policies"].items()},
                                    {p: np.asarray(d["cost"]) for p, d in iv["policies"].items()},
                                    iv["n_samples"], iv["n_concepts"], iv["n_annotated"])
        (run_dir / f"interventions_{split}.svg").write_text(curves.svg(f"Intervention curves ({split})"))
        (run_dir / f"interventions_{split}.plotly.json").write_text(curves.figure().to_json())


def _summary_charts(folder: Path, summary: dict[str, Any], cfg: dict[str, Any]) -> None:
    """Bar chart of mean ± std accuracy per grid point (self-contained HTML + plotly JSON)."""
    import plotly.graph_objects as go

    from cbm._io import write_figure_html

    points = summary["points"]
    fig = go.Figure()
    splits = sorted({k.split("/")[0] for p in points.values() for k in p["metrics"] if k.endswith("/accuracy")})
    for split in splits:
        key = f"{split}/accuracy"
        labels = [lb for lb, p in points.items() if key in p["metrics"]]
        fig.add_trace(go.Bar(name=split, x=labels, y=[points[lb]["metrics"][key]["mean"] for lb in labels],
                             error_y=dict(type="data", array=[points[lb]["metrics"][key]["std"] for lb in labels])))
    fig.update_layout(title=f"{cfg.get('name', 'experiment')}: accuracy (mean ± std over seeds)",
                      yaxis_tickformat=".0%", template="plotly_white", barmode="group")
    write_figure_html(fig, folder / "summary.html")
    (folder / "summary.plotly.json").write_text(fig.to_json())


class _TensorBoard:
    """One event-file folder per grid point and seed under ``tensorboard/``."""

    def __init__(self, folder: Path, writer_cls: Any) -> None:
        self.folder, self.cls, self.open = folder, writer_cls, []

    def __call__(self, label: str, seed: int, row: dict[str, Any], metrics: dict[str, Any]) -> None:
        w = self.cls(log_dir=str(self.folder / "tensorboard" / label / f"seed_{seed}"))
        for k, v in row.items():
            if isinstance(v, float) and np.isfinite(v):
                w.add_scalar(k, v, 0)
        for split, c in (metrics.get("concepts") or {}).items():
            for pol, d in ((c.get("interventions") or {}).get("policies") or {}).items():
                for k, acc in enumerate(d["accuracy"]):
                    w.add_scalar(f"{split}/intervention/{pol}", acc, k)
        w.flush()
        self.open.append(w)

    def close(self) -> None:
        for w in self.open:
            w.close()


def _tensorboard(folder: Path) -> _TensorBoard | None:
    """A TensorBoard writer factory, or None when ``tensorboard`` is not installed."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return _TensorBoard(folder, SummaryWriter)


# -- dry run ---------------------------------------------------------------------------------------------
def stand_in(cfg: dict[str, Any]) -> dict[str, Any]:
    """The same experiment on a tiny synthetic concept world: same method, params, grid, protocol and
    evaluation; one seed; data, encoder and concept source replaced (so nothing needs downloading)."""
    out = copy.deepcopy(cfg)
    n_concepts = int(min(int((cfg.get("concepts") or {}).get("max_concepts", 12)), 12))
    out["data"] = {"source": "synthetic", "params": {"n_classes": 4, "n_concepts": max(n_concepts, 6),
                                                     "n_samples": 160, "dim": 32, "random_state": 0}}
    out["encoder"], out["concepts"] = {}, {"source": "data"}
    out["seeds"] = list(cfg.get("seeds", [0]))[:1]
    spl = dict(cfg.get("splits") or {})
    if spl.get("shots"):
        spl["shots"] = min(int(spl["shots"]), 8)
    out["splits"] = {k: v for k, v in spl.items() if k in ("shots",)}
    grid = {}
    for k, v in (cfg.get("grid") or {}).items():
        if k.startswith(("data.", "encoder.", "concepts.")):
            continue
        grid[k] = list(dict.fromkeys(min(int(x), 8) for x in v)) if k == "splits.shots" else v
    out["grid"] = grid
    return out


__all__ = ["ExperimentError", "ExperimentResult", "check_config", "check_paths", "environment", "expand", "flat_metrics",
           "load_config", "protocol_splits", "run_experiment", "run_once", "stand_in", "summarise"]
