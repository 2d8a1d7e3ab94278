"""`cbm edit`: global edits of a model, previewed on evaluation data, with history and versions.

    cbm edit runs/birds prune --class cardinal --concept "water background" --eval-on test,shifted
    cbm edit runs/birds suggest                        # concepts that look spurious
    cbm edit runs/birds history | undo | redo | discard
    cbm edit runs/birds history --format csv --out audit.csv   # who did what, when, why, effect
    cbm edit runs/birds save --note "prune water"      # writes a new version
    cbm edit runs/birds diff 1 2                       # weight changes between versions
    cbm edit runs/birds revert 1                       # make version 1 current again (as a new version)
    cbm edit runs/birds rebase                         # replay pending edits on a newer current version

Edits are recorded at once in MODEL_DIR/history.json and stay pending until `save`. Every change
holds the directory's lock, so several commands (and the app) can edit one directory at once.
Evaluation data defaults to MODEL_DIR/data.npz (the .npz format of `cbm train`).
Every change records who made it: --user NAME, else $CBM_USER, else the login name.
"""

from __future__ import annotations

from pathlib import Path

WEIGHT_EDITS = ("prune", "set-weight", "scale", "remove", "prior")


def add_parser(sub) -> None:
    p = sub.add_parser("edit", help="edit a model (prune, re-weight, remove concepts) with undo and versions",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("model", metavar="MODEL_DIR", help="model directory")
    acts = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    def edit_parser(name: str, help: str, cls: bool = True):
        q = acts.add_parser(name, help=help)
        if cls:
            q.add_argument("--class", dest="cls", help="class name (default: every class)")
        if name != "prior":
            q.add_argument("--concept", required=True, help="concept name")
        q.add_argument("--eval-on", help="comma-separated splits to preview on (default: all but train)")
        q.add_argument("--data", metavar="NPZ", help="evaluation .npz (default: MODEL_DIR/data.npz)")
        q.add_argument("--why", default="", help="reason, stored in the edit log")
        q.add_argument("--dry-run", action="store_true", help="only preview; change nothing")
        return with_user(q)

    def with_user(q):
        q.add_argument("--user", help="who makes the change (default $CBM_USER, else the login name)")
        return q

    edit_parser("prune", "zero a class-concept weight").add_argument(
        "--normalize", action="store_true", help="keep the class row's L1 norm (PCBM)")
    edit_parser("set-weight", "set a class-concept weight").add_argument("--value", type=float, required=True)
    edit_parser("scale", "scale a class-concept weight").add_argument("--factor", type=float, required=True)
    edit_parser("remove", "remove a concept entirely", cls=False)
    edit_parser("prior", "shrink weights that contradict the concept bank's prior", cls=False).add_argument(
        "--strength", type=float, default=1.0, help="1 zeroes them (default), 0.5 halves them")
    q = acts.add_parser("suggest", help="rank concepts that look spurious across domains")
    q.add_argument("--eval-on", help="comma-separated splits (default: all)")
    q.add_argument("--data", metavar="NPZ")
    q.add_argument("--top", type=int, default=10)
    q = acts.add_parser("history", help="list logged edits, or export the audit trail (--format)")
    q.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="table: the edits (default); csv/json: every action with who, when, why, effect")
    q.add_argument("--out", metavar="FILE", help="write the export to FILE instead of stdout")
    with_user(acts.add_parser("undo", help="undo the last unsaved edit"))
    with_user(acts.add_parser("redo", help="redo the last undone edit"))
    with_user(acts.add_parser("discard", help="drop all unsaved edits"))
    with_user(acts.add_parser("save", help="save the edited model as a new version")).add_argument(
        "--note", default="", help="why this version (stored with it and in the audit trail)")
    q = with_user(acts.add_parser("revert", help="make an earlier version current again (saved as a new version)"))
    q.add_argument("to_version", type=int, metavar="N", help="the version to go back to")
    q.add_argument("--note", default="")
    with_user(acts.add_parser("rebase", help="replay unsaved edits on the current version (after another save)"))
    q = acts.add_parser("diff", help="weight changes between two versions (V2 default: current edits)")
    q.add_argument("v1", type=int)
    q.add_argument("v2", type=int, nargs="?")
    p.set_defaults(func=_run)


#: CLI action -> (edit kind, the argument that gives its value field)
_ACTIONS = {"prune": ("prune", None), "set-weight": ("set-weight", "value"), "scale": ("scale-weight", "factor"),
            "remove": ("remove-concept", None), "prior": ("apply-prior", "strength")}


def _edit(args):
    from cbm.edits import create_edit

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
    if act in WEIGHT_EDITS:
        edit = _edit(args)
        sets, effect = _evalsets(session.model, args), None
        if sets:
            effect = session.preview(edit, sets)
            print(effect.report())
        else:
            print(f"(no evaluation data: {Path(args.model) / 'data.npz'} is missing; pass --data to preview)")
        if args.dry_run:
            print("dry run: nothing changed")
            return 0
        entry = session.apply(edit, why=args.why, effect=effect)
        print(f"applied as unsaved edit #{entry['seq']} ({len(entry['changes'])} weight(s) changed); "
              f"`cbm edit {args.model} save` writes a new version, `undo` reverts it")
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
