"""`cbm eval --annotations SOURCE [--interventions POLICY]`: concept-level metrics and intervention curves.

Kept apart from ``eval_cmd`` so the evaluate command stays short: ``add_arguments`` registers the
options, ``run`` turns loaded splits into the ``"concepts"`` entry of the metrics JSON and the text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cbm._io import write_figure_html
from cbm.data.evalfile import read_arrays

#: accepted by --interventions besides the policy names
ALL = "all"


def add_arguments(p) -> None:
    """Register ``--annotations`` and ``--interventions`` on the ``cbm eval`` parser."""
    p.add_argument("--annotations", metavar="SOURCE",
                   help="per-image concept labels: a CUB-200-2011 folder, an AwA folder, a .csv/.parquet "
                        "table (image_id, concept, value), or 'data' for the labels stored with --data "
                        "(concepts_<split>, or the demo's garment labels); adds per-concept accuracy/AUC, "
                        "leakage and NEC/ANEC")
    p.add_argument("--interventions", metavar="POLICY", action="append", default=None,
                   help="intervention curves with POLICY: random, uncertainty, contribution, coop, or all "
                        "(repeatable or comma-separated; needs --annotations)")
    p.add_argument("--plots", metavar="DIR", default=None,
                   help="write the concept and intervention charts (HTML and SVG) into DIR")


def wanted(args) -> bool:
    """True when the user asked for concept-level evaluation."""
    return bool(getattr(args, "annotations", None) or getattr(args, "interventions", None))


def policies(values: list[str] | None) -> list[str]:
    """``["random,coop", "all"]`` -> policy names, checked."""
    from cbm.exceptions import unknown_name_message
    from cbm.research.interventions import POLICIES

    out: list[str] = []
    for v in values or []:
        for p in (x.strip() for x in v.split(",") if x.strip()):
            if p == ALL:
                out += [q for q in POLICIES if q not in out]
            elif p not in POLICIES:
                raise ValueError(unknown_name_message("intervention policy", p, [*POLICIES, ALL]))
            elif p not in out:
                out.append(p)
    return out


def run(model: Any, splits: dict[str, dict[str, Any]], args) -> tuple[dict[str, Any], str]:
    """Concept evaluation of every split that has annotations: ``(json_dict, text)``."""
    from cbm.research.evaluation import evaluate_splits

    if not getattr(args, "annotations", None):
        raise ValueError("--interventions needs --annotations SOURCE (the true concept values to set).")
    pols = policies(args.interventions)
    data = getattr(args, "data", None) or str(Path(args.model_dir) / "data.npz")  # eval's default data
    anns = split_annotations(model, splits, args.annotations, data)
    if not anns:
        raise ValueError(f"--annotations {args.annotations!r} labels no image of the evaluated splits "
                         f"({', '.join(splits)}); check that the image ids match.")
    evals = evaluate_splits(model, {n: s for n, s in splits.items() if n != "train"} or splits, anns,
                            interventions=pols or None)
    text = "\n\n".join(ev.summary() for ev in evals.values())
    if getattr(args, "plots", None):
        out = Path(args.plots)
        out.mkdir(parents=True, exist_ok=True)
        for name, ev in evals.items():
            write_figure_html(ev.figure(), out / f"concepts_{name}.html")
            if ev.interventions is not None:
                write_figure_html(ev.interventions.figure(), out / f"interventions_{name}.html")
                (out / f"interventions_{name}.svg").write_text(ev.interventions.svg(
                    f"Intervention curves: {ev.method} ({name})"))
        text += f"\ncharts written to {out}"
    return {name: ev.to_dict() for name, ev in evals.items()}, text


def split_annotations(model: Any, splits: dict[str, dict[str, Any]], source: str, data: str | None
                      ) -> dict[str, Any]:
    """Annotations per split, rows aligned to the split's samples."""
    from cbm.research.annotations import read_annotations

    stored = _stored_arrays(data)
    if source == "data":
        from cbm.research.evaluation import stored_annotations

        merged = {name: {**{k: stored[f"{k}_{name}"] for k in ("ids", "concepts")
                            if f"{k}_{name}" in stored}, **split} for name, split in splits.items()}
        out = stored_annotations(model, merged)
        if not out:
            raise ValueError("--annotations data: the data stores no per-image concept labels (concepts_<split> "
                             "arrays; `cbm demo` writes them); pass a CUB/AwA folder or a .csv/.parquet.")
        return out
    out = {}
    ann = read_annotations(source)
    for name, split in splits.items():
        ids = split.get("ids", stored.get(f"ids_{name}"))
        if ids is None:
            raise ValueError(f"Split {name!r} of --data has no image ids (ids_{name}) to match the annotations "
                             f"in {source!r}; embed with ids (cbm embed) or pass --annotations data.")
        sub = ann.for_ids(np.asarray(ids).astype(str))
        if np.isfinite(sub.values).any():
            out[name] = sub
    return out


def _stored_arrays(data: str | None) -> dict[str, np.ndarray]:
    """Per-sample arrays of an ``.npz`` --data file that the training loader does not return (ids, flags)."""
    if not data or not str(data).endswith(".npz") or not Path(data).is_file():
        return {}
    return {k: v for k, v in read_arrays(data).items() if k.split("_", 1)[0] in ("ids", "concepts")}
