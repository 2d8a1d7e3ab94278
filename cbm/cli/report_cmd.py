"""`cbm report`: one explanation, or one edit's before/after, as a self-contained HTML file.

    cbm report runs/demo --sample test-0007                   # writes report-test-0007.html
    cbm report runs/demo --sample 12 --split shifted --versus Shirt -o why.html
    cbm report runs/demo --edit 1                             # writes report-edit-1.html

A sample's page has the image (inline), the prediction, the concepts for and against it, "why
not" another class, one concept's evidence and the out-of-distribution score. An edit's page (N as
in `cbm edit MODEL history`) has the verdict, per-class recall before -> after (the class the edit
is about first), accuracy per split, the baselines and the images whose prediction changes, as
the edit preview computes them. No outside requests.
"""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="export one explanation or one edit's effect as a self-contained HTML file",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("model", metavar="MODEL_DIR", help="model directory")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--sample", metavar="ID", help="a sample id (ids_<split>) or row number")
    what.add_argument("--edit", metavar="N", type=int, help="a logged edit's number (`cbm edit MODEL history`)")
    p.add_argument("--data", metavar="NPZ", help="evaluation .npz (default: MODEL_DIR/data.npz)")
    p.add_argument("--split", help="split to look in (default: test, shifted, val, train)")
    p.add_argument("--versus", metavar="CLASS", help="the 'why not' class (default: the true class if "
                                                      "the prediction is wrong, else the runner-up)")
    p.add_argument("--concept", help="concept whose evidence is shown (default: the largest contributor)")
    p.add_argument("-o", "--output", metavar="HTML",
                   help="output file (default: report-<ID>.html, or report-edit-<N>.html)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from cbm.edits.history import EditSession
    from cbm.edits.preview import load_eval_data, read_sample
    from cbm.explain import class_index, concept_index
    from cbm.report import sample_report

    if args.edit is not None:
        extra = [f"--{k}" for k in ("split", "versus", "concept") if getattr(args, k) is not None]
        if extra:
            raise ValueError(f"{', '.join(extra)} apply to --sample only; an edit's report covers every split.")
        return _write(_edit_page(args), Path(args.output or f"report-edit-{args.edit}.html"))
    model = EditSession(args.model).model
    data = Path(args.data) if args.data else Path(args.model) / "data.npz"
    split, row, _, _ = read_sample(data, args.sample, args.split)
    versus = None if args.versus is None else model.class_names_[class_index(model, args.versus)]
    concept = None if args.concept is None else model.concept_names_[concept_index(model, args.concept)]
    page = sample_report(model, load_eval_data(data), split, row, versus=versus, concept=concept)
    return _write(page, Path(args.output or f"report-{args.sample}.html"))


def _edit_page(args) -> str:
    from cbm.edits.report import edit_report

    return edit_report(args.model, args.edit, args.data)


def _write(page: str, out: Path) -> int:
    if out.is_dir():
        raise ValueError(f"Output {str(out)!r} is a folder; give a file name such as {str(out / 'report.html')!r}.")
    out.write_text(page, encoding="utf-8")
    print(f"wrote {out} ({len(page) / 1024:.0f} KiB): open it in any browser, offline")
    return 0
