"""`cbm edit`: global edits of a model, previewed on evaluation data, with history and versions.

    cbm edit runs/birds prune --class cardinal --concept "water background" --eval-on test,shifted
    cbm edit runs/birds preview erase --concept "water background" --class cardinal   # nothing changes
    cbm edit runs/birds erase --concept "water background" --class cardinal   # LEACE, head refitted
    cbm edit runs/birds refit-without --concept "water background" --reweight
    cbm edit runs/birds add-concept --name "stripe" --from-candidate discover/candidates.json#1 \
        --class cardinal --weight 0                    # name a shortcut `cbm discover` found
    cbm edit runs/birds repair --class cardinal --concept "stripe"   # choose on validation, preview
    cbm edit runs/birds suggest                        # concepts that look spurious
    cbm edit runs/birds history | undo | redo | discard
    cbm edit runs/birds history --format csv --out audit.csv   # who did what, when, why, effect
    cbm edit runs/birds save --note "prune water"      # writes a new version
    cbm edit runs/birds diff 1 2                       # weight changes between versions
    cbm edit runs/birds revert 1                       # make version 1 current again (as a new version)
    cbm edit runs/birds rebase                         # replay pending edits on a newer current version

Every edit prints its preview: accuracy and per-class recall on each split before and after, next to
the black box, the black box given the same fix and "never predict k", and the verdict (the same
words as the app's Edit page). Refitting edits (erase, refit-without) and add-concept read the
training data from MODEL_DIR/data.npz (splits `train`, `val`), as `cbm train` and `cbm demo` write it.
Edits are recorded at once in MODEL_DIR/history.json and stay pending until `save`. Every change
holds the directory's lock, so several commands (and the app) can edit one directory at once.
Evaluation data defaults to MODEL_DIR/data.npz (the .npz format of `cbm train`).
Every change records who made it: --user NAME, else $CBM_USER, else the login name.
"""

from __future__ import annotations

from pathlib import Path

WEIGHT_EDITS = ("prune", "set-weight", "scale", "remove", "prior")
REFIT_EDITS = ("erase", "refit-without", "add-concept")
EDIT_ACTIONS = WEIGHT_EDITS + REFIT_EDITS


def add_parser(sub) -> None:
    p = sub.add_parser("edit", help="edit a model (prune, re-weight, remove concepts) with undo and versions",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("model", metavar="MODEL_DIR", help="model directory")
    acts = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    _add_edit_actions(acts)
    q = acts.add_parser("preview", help="preview an edit (any edit action) with baselines and verdict; "
                                        "change nothing")
    _add_edit_actions(q.add_subparsers(dest="edit_action", metavar="EDIT", required=True))
    q = _with_user(acts.add_parser("repair", help="choose a repair of 'CLASS leans on CONCEPT' on the validation "
                                                 "split, preview it with baselines, apply it with --apply"))
    q.add_argument("--class", dest="cls", required=True, help="the class that leans on the concept")
    q.add_argument("--concept", required=True, help="the concept (e.g. one added from `cbm discover`)")
    q.add_argument("--val-split", default="val", help="the training site's validation split (default: val)")
    q.add_argument("--eval-on", help="comma-separated splits to preview the choice on (default: all but train)")
    q.add_argument("--data", metavar="NPZ", help="evaluation .npz (default: MODEL_DIR/data.npz)")
    q.add_argument("--apply", action="store_true", help="apply the chosen edit (unsaved, undoable)")
    q.add_argument("--why", default="", help="reason, stored in the edit log")
    q = acts.add_parser("suggest", help="rank concepts that look spurious across domains")
    q.add_argument("--eval-on", help="comma-separated splits (default: all)")
    q.add_argument("--data", metavar="NPZ")
    q.add_argument("--top", type=int, default=10)
    q = acts.add_parser("history", help="list logged edits, or export the audit trail (--format)")
    q.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="table: the edits (default); csv/json: every action with who, when, why, effect")
    q.add_argument("--out", metavar="FILE", help="write the export to FILE instead of stdout")
    _with_user(acts.add_parser("undo", help="undo the last unsaved edit"))
    _with_user(acts.add_parser("redo", help="redo the last undone edit"))
    _with_user(acts.add_parser("discard", help="drop all unsaved edits"))
    _with_user(acts.add_parser("save", help="save the edited model as a new version")).add_argument(
        "--note", default="", help="why this version (stored with it and in the audit trail)")
    q = _with_user(acts.add_parser("revert", help="make an earlier version current again (saved as a new version)"))
    q.add_argument("to_version", type=int, metavar="N", help="the version to go back to")
    q.add_argument("--note", default="")
    _with_user(acts.add_parser("rebase", help="replay unsaved edits on the current version (after another save)"))
    q = acts.add_parser("diff", help="weight changes between two versions (V2 default: current edits)")
    q.add_argument("v1", type=int)
    q.add_argument("v2", type=int, nargs="?")
    p.set_defaults(func=_run)


def _with_user(q):
    q.add_argument("--user", help="who makes the change (default $CBM_USER, else the login name)")
    return q


def _add_edit_actions(acts) -> None:
    """The edit actions (prune ... add-concept), on ``cbm edit`` and again under ``cbm edit preview``."""
    def edit_parser(name: str, help: str, cls: bool = True, concept: bool = True):
        q = acts.add_parser(name, help=help)
        if cls:
            q.add_argument("--class", dest="cls", help="class name (default: every class)")
        if concept:
            q.add_argument("--concept", required=True, help="concept name")
        q.add_argument("--eval-on", help="comma-separated splits to preview on (default: all but train)")
        q.add_argument("--data", metavar="NPZ", help="evaluation .npz (default: MODEL_DIR/data.npz)")
        q.add_argument("--why", default="", help="reason, stored in the edit log")
        q.add_argument("--dry-run", action="store_true", help="only preview; change nothing")
        return _with_user(q)

    edit_parser("prune", "zero a class-concept weight").add_argument(
        "--normalize", action="store_true", help="keep the class row's L1 norm (PCBM)")
    edit_parser("set-weight", "set a class-concept weight").add_argument("--value", type=float, required=True)
    edit_parser("scale", "scale a class-concept weight").add_argument("--factor", type=float, required=True)
    edit_parser("remove", "remove a concept entirely", cls=False)
    edit_parser("prior", "shrink weights that contradict the concept bank's prior", cls=False,
                concept=False).add_argument("--strength", type=float, default=1.0,
                                            help="1 zeroes them (default), 0.5 halves them")
    q = edit_parser("erase", "erase a concept from the representation (LEACE) and refit the head; "
                             "--class: fit the eraser on the other classes' images")
    q.add_argument("--class-conditional", action="store_true",
                   help="erase the concept within each class (one direction per class)")
    q.add_argument("--reweight", action="store_true",
                   help="refit the head with the concept made independent of the class")
    q.add_argument("--refit-predictors", action="store_true",
                   help="re-ground the concept predictors too (needs concept labels in data.npz)")
    q = edit_parser("refit-without", "drop a concept and refit the head", cls=False)
    q.add_argument("--reweight", action="store_true",
                   help="refit with the concept made independent of the class")
    q = edit_parser("add-concept", "add a concept fitted from example images (a discovered slice, or ids)",
                    concept=False)
    q.add_argument("--name", required=True, help="the new concept's name")
    src = q.add_mutually_exclusive_group(required=True)
    src.add_argument("--from-candidate", metavar="JSON#RANK",
                     help="a candidate of `cbm discover --out`: candidates.json#1 is the top one")
    src.add_argument("--positives", metavar="IDS", help="ids of images that show it: comma-separated or a file")
    q.add_argument("--negatives", metavar="IDS", help="ids of images that do not (with --positives)")
    q.add_argument("--split", default="train", help="the data.npz split the examples come from (default: train)")
    q.add_argument("--weight", type=float, default=0.0,
                   help="the new concept's weight for --class (default 0: named, not used yet)")


#: CLI action -> (edit kind, the argument that gives its value field)
_ACTIONS = {"prune": ("prune", None), "set-weight": ("set-weight", "value"), "scale": ("scale-weight", "factor"),
            "remove": ("remove-concept", None), "prior": ("apply-prior", "strength")}


def _edit(args, model=None):
    from cbm.edits import EraseConcept, RefitWithout, create_edit

    if args.action == "erase":
        return EraseConcept(args.concept, args.cls, class_conditional=args.class_conditional,
                            refit_predictors=args.refit_predictors, reweight=args.reweight)
    if args.action == "refit-without":
        return RefitWithout(args.concept, reweight=args.reweight)
    if args.action == "add-concept":
        return _add_concept(args, model)
    kind, value = _ACTIONS[args.action]
    if args.action == "prune" and args.normalize:
        if args.cls is None:
            raise ValueError("prune --normalize needs --class (it rescales that class's weights).")
        kind = "prune-normalize"
    fields = {} if kind == "apply-prior" else {"concept": args.concept}
    if kind not in ("remove-concept", "apply-prior"):
        fields["cls"] = args.cls
    if value:
        fields[value] = getattr(args, value)
    return create_edit(kind, **fields)


def _add_concept(args, model):
    """AddConcept.from_examples on rows of a data.npz split: a `cbm discover` candidate, or ids."""
    import numpy as np

    from cbm.edits import AddConcept
    from cbm.edits.discover import load_candidates
    from cbm.edits.preview import load_eval_data

    path = Path(args.data) if args.data else Path(args.model) / "data.npz"
    split_name = args.split
    if args.from_candidate:
        cand = load_candidates(args.from_candidate)[0]
        split_name = cand.source.get("split", split_name)
        path = Path(args.data or cand.source.get("data") or path)
    splits = load_eval_data(path)
    if split_name not in splits:
        raise ValueError(f"{str(path)!r} has no split {split_name!r}; it has {sorted(splits)}. Pass --split.")
    split = splits[split_name]
    ids = split["ids"].astype(str) if "ids" in split else np.arange(len(split["y"])).astype(str)
    if args.from_candidate:
        if cand.n_samples != len(ids):
            raise ValueError(f"Candidate {args.from_candidate!r} was found on {cand.n_samples} images but split "
                             f"{split_name!r} of {str(path)!r} has {len(ids)}; run `cbm discover` again.")
        pos, neg = cand.concept_examples()
    else:
        if not args.negatives:
            raise ValueError("add-concept --positives needs --negatives (ids of images that do not show it).")
        pos, neg = _rows_of(args.positives, ids, "--positives"), _rows_of(args.negatives, ids, "--negatives")
    weights = {args.cls: args.weight} if args.cls else {}
    source = args.from_candidate or "ids"
    return AddConcept.from_examples(args.name, split["X"][pos], split["X"][neg], weights, model=model,
                                    split=split_name, ids=[str(i) for i in ids[np.r_[pos, neg]]], picked=source)


def _rows_of(spec: str, ids, flag: str):
    """Rows of ``ids`` named by ``spec``: comma-separated ids, or a file with one id per line."""
    import numpy as np

    try:
        names = (Path(spec).read_text(encoding="utf-8").split() if Path(spec).is_file()
                 else [s.strip() for s in spec.split(",") if s.strip()])
    except UnicodeDecodeError:
        raise ValueError(f"{flag} {spec!r} is not a UTF-8 text file of ids (one per line).") from None
    if not names:
        raise ValueError(f"{flag} {spec!r} names no ids; give ids comma-separated or a file with one per line.")
    where = {str(i): r for r, i in enumerate(ids)}
    missing = [n for n in names if n not in where]
    if missing:
        raise ValueError(f"{flag}: {len(missing)} id(s) are not in the split, e.g. {missing[:3]}; ids look like "
                         f"{list(ids[:3])}.")
    return np.asarray([where[n] for n in names], np.int64)


def _preview(session, edit, args, cls: str | None = None):
    """The edit's preview with baselines and verdict (the app's function), printed; None without data."""
    from cbm.edits.report import preview_with_baselines

    sets = _evalsets(session.model, args)
    if not sets:
        print(f"(no evaluation data: {Path(args.model) / 'data.npz'} is missing; pass --data to preview)")
        return None
    effect = preview_with_baselines(session.model, edit, sets, args.model, cls=cls)
    print(effect.report())
    if effect.baselines is None and effect.baseline_error:
        print(f"  (no baselines: {effect.baseline_error})")
    return effect


def _repair(session, args) -> int:
    """`cbm edit MODEL repair`: suggest_repairs on the validation split, with progress; preview the choice."""
    import sys

    from tqdm.auto import tqdm

    from cbm.edits.preview import load_evalsets
    from cbm.edits.repair import suggest_repairs

    data = Path(args.data) if args.data else Path(args.model) / "data.npz"
    val = load_evalsets(session.model, data, [args.val_split])[args.val_split]
    bar = tqdm(total=None, desc="previewing repairs", unit="edit", file=sys.stderr, leave=False)

    def progress(i: int, n: int, name: str) -> None:
        bar.total = n
        bar.n = i
        bar.set_postfix_str(name[:40])
        bar.refresh()

    try:
        reps = suggest_repairs(session.model, val, args.cls, args.concept, progress=progress)
    finally:
        bar.close()
    print(f"Repairs of {args.cls!r} <- {args.concept!r} on split {args.val_split!r}: group-balanced accuracy "
          "(each class's images with and without the concept count equally), ± its bootstrap error; an edit "
          "is chosen only when its gain over no edit stays above 0 at the 90% lower bound.")
    print(f"  {'edit':<60}{'score':>7}{'±':>6}{'gain low':>9}{'worst':>7}{'val':>7}")
    for r in reps.itertuples():
        label = "no edit" if r.edit is None else r.edit.short_label()
        extra = f"  ({r.error})" if isinstance(r.error, str) and r.error else ""
        print(f"{'*' if r.chosen else ' '} {label[:59]:<60}{r.score:>7.3f}{r.score_se:>6.3f}{r.gain_low:>+9.3f}"
              f"{r.worst_group:>7.3f}{r.val_accuracy:>7.3f}{extra}")
    chosen = reps.iloc[0]["edit"]
    if chosen is None:
        print("Chosen: no edit (none beats the model beyond the noise on the validation split); nothing changed.")
        return 0
    print(f"Chosen: {chosen.plain()}")
    effect = _preview(session, chosen, args, cls=args.cls)
    if not args.apply:
        print(f"not applied: add --apply (or `cbm edit {args.model} {_action_of(chosen)} ...`)")
        return 0
    entry = session.apply(chosen, why=args.why or "cbm edit repair: chosen on the validation split", effect=effect)
    print(f"applied as unsaved edit #{entry['seq']}; `cbm edit {args.model} save` writes a new version, "
          "`undo` reverts it")
    return 0


def _action_of(edit) -> str:
    return {"erase-concept": "erase", "refit-without": "refit-without", "prune": "prune",
            "prune-normalize": "prune --normalize"}.get(edit.kind, edit.kind)


def _evalsets(model, args, default_all: bool = False):
    from cbm.edits.preview import load_evalsets, npz_splits

    data = Path(args.data) if args.data else Path(args.model) / "data.npz"
    if not args.data and not data.is_file():
        return None
    splits = args.eval_on.split(",") if args.eval_on else [
        s for s in npz_splits(data) if default_all or s != "train"]
    return load_evalsets(model, data, [s.strip() for s in splits if s.strip()])


def _export(df, fmt: str, out: str | None) -> None:
    """The audit trail as CSV or JSON (a list of records), to ``out`` or stdout."""
    import json
    import sys

    from cbm._io import atomic_write_bytes, safe_csv_frame

    records = [{k: (None if v != v else v) for k, v in r.items()}  # NaN (no seq/version) -> null
               for r in df.astype(object).to_dict("records")]
    for r in records:
        for k in ("seq", "version"):
            r[k] = None if r[k] is None else int(r[k])
    if fmt == "json":
        for r in records:
            r["effect"] = json.loads(r["effect"]) if r["effect"] else None
        text = json.dumps(records, indent=2, ensure_ascii=False) + "\n"
    else:
        text = safe_csv_frame(df.astype({"seq": "Int64", "version": "Int64"})).to_csv(index=False)
    if out:
        atomic_write_bytes(Path(out), text.encode("utf-8"))
        print(f"wrote {len(records)} audit record(s) to {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def _run(args) -> int:
    from cbm.edits.history import EditSession

    session = EditSession(args.model, user=getattr(args, "user", None))
    shown = list(session.warnings)
    for w in shown:
        print(f"warning: {w}")
    act = args.action
    if act == "preview":
        args.action = act = args.edit_action
        args.dry_run = True
    if act in EDIT_ACTIONS:
        edit = _edit(args, session.model)
        effect = _preview(session, edit, args)
        if args.dry_run:
            print("dry run: nothing changed")
            return 0
        entry = session.apply(edit, why=args.why, effect=effect)
        print(f"applied as unsaved edit #{entry['seq']} ({len(entry['changes'])} weight(s) changed); "
              f"`cbm edit {args.model} save` writes a new version, `undo` reverts it")
    elif act == "repair":
        return _repair(session, args)
    elif act == "suggest":
        from cbm.edits.preview import suggest_edits

        sets = _evalsets(session.model, args, default_all=True)
        if not sets:
            raise FileNotFoundError(f"suggest needs evaluation data: pass --data (no {Path(args.model) / 'data.npz'}).")
        df = suggest_edits(session.model, sets, top=args.top)
        if df.empty:
            print("no suspicious concepts found (needs data from two or more domains, or a concept prior)")
        for r in df.itertuples():
            print(f"{r.score:8.3f}  {r._1} / {r.concept}: {r.reason}")
    elif act == "history" and args.format != "table":
        _export(session.audit_trail(), args.format, args.out)
    elif act == "history":
        df = session.history()
        print(df.drop(columns=["when"]).to_string(index=False) if len(df) else "no edits logged")
    elif act in ("undo", "redo"):
        entry = getattr(session, act)()
        print(f"{act}: edit #{entry['seq']} {entry['edit']['kind']} ({len(entry['changes'])} weight(s))")
    elif act == "discard":
        print(f"discarded {session.discard()} unsaved edit(s)")
    elif act == "save":
        print(f"saved version {session.save(args.note)} in {args.model}")
    elif act == "revert":
        new = session.revert_to(args.to_version, note=args.note)
        print(f"version {new} is now current: a copy of version {args.to_version} (earlier versions are kept)")
    elif act == "rebase":
        failed = session.rebase()
        print(f"{len(session.pending)} unsaved edit(s) now apply to version {session.version}; check them "
              f"(`cbm edit {args.model} history`) and save")
        for e in failed:
            print(f"warning: edit #{e['seq']} no longer applies and was dropped: {e.get('error')}")
    elif act == "diff":
        print(session.diff(args.v1, args.v2).report())
    for w in session.warnings[len(shown):]:
        print(f"warning: {w}")
    return 0
