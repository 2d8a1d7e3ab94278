"""A global edit: find a spurious concept, preview pruning it, commit it as a new model version.

What this teaches
-----------------
1. ``suggest_edits`` ranks class-concept weights whose evidence holds in one domain and not in
   another (or contradicts the concept prior): candidates for a spurious shortcut.
2. ``preview`` measures an edit on cached activations (``EvalSet``) before anything changes:
   accuracy before/after per split, class and domain, and the samples whose prediction flips.
3. ``EditSession`` applies edits to a saved model directory with a persistent log: undo/redo,
   ``save`` as a new version (the old one stays loadable), and ``diff`` between versions.

The data is the controlled concept world (``cbm.data.make_concept_world``) with a planted
spurious concept, "water background", that comes with one class in the training domain and with
the other classes after the shift, so the right edit is known and its effect can be checked.

    python examples/05_global_edit.py --quick
    python examples/05_global_edit.py --model-dir runs/birds      # keep the model directory
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from cbm import (
    EditSession,
    EvalSet,
    create_model,
    load_model,
    make_concept_world,
    preview,
    save_model,
    suggest_edits,
)
from cbm.io import list_versions


def run(model_dir: Path, quick: bool, seed: int) -> None:
    world = make_concept_world(n_classes=5 if quick else 10, n_concepts=16 if quick else 40,
                               n_samples=600 if quick else 3000, random_state=seed)
    names = np.asarray(world.class_names)
    tr = world["train"]
    model = create_model("pcbm", concepts=world.bank, lam=1e-2, random_state=seed, device="auto")
    model.fit(tr.X, names[tr.y])

    # Activations computed once per split; every preview below reuses them.
    evalsets = {k: EvalSet.from_model(model, world[k].X, names[world[k].y], name=k, domains=world[k].domains)
                for k in ("val", "test", "shifted")}
    suggestions = suggest_edits(model, evalsets, top=3)
    print("suggested edits (most suspicious first):")
    for row in suggestions.itertuples():
        print(f"  {row.edit.describe()}: weight {row.weight:+.3f}; {row.reason}")
    edit = suggestions["edit"].iloc[0]

    effect = preview(model, edit, evalsets)
    print("\npreview (nothing committed yet):\n" + effect.report())
    flips = effect.changed["shifted"].head(3)
    print("  shifted samples that flip: " + "; ".join(
        f"#{r.index} {r.before} -> {r.after} (true {r.true})" for r in flips.itertuples(index=False)))

    v1 = save_model(model, model_dir, note="PCBM on the concept world",
                    metrics={"shifted_accuracy": model.score(world["shifted"].X, names[world["shifted"].y])})
    session = EditSession(model_dir)
    session.apply(edit, why="suggested: evidence for the class holds in one domain only")
    session.undo()
    print(f"\nafter undo: {len(session.pending)} pending edit(s); redo available: {session.can_redo}")
    session.redo()
    v2 = session.save(note=f"{edit.describe()} (spurious)")
    print(f"saved version {v2}; versions on disk: {list_versions(model_dir)}")
    print(session.history()[["seq", "status", "edit", "old", "new", "version"]].to_string(index=False))
    print(f"diff v{v1} -> v{v2}: {session.diff(v1, v2).report()}")

    before, after = load_model(model_dir, version=v1), load_model(model_dir, version=v2)
    for split in ("test", "shifted"):
        X, y = world[split].X, names[world[split].y]
        print(f"{split} accuracy: v{v1} {before.score(X, y):.3f} -> v{v2} {after.score(X, y):.3f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small world (seconds)")
    p.add_argument("--model-dir", metavar="DIR", help="model directory to write (default: a temporary one, removed)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.model_dir:
        run(Path(args.model_dir), args.quick, args.seed)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            run(Path(tmp) / "birds", args.quick, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
