"""Every `cbm` command, fed bad paths and bad numbers, fails with one message and changes nothing.

The cases are generated from the argparse tree itself (built as ``cbm.cli.build_parser`` builds it):
every subcommand and nested action (``cbm edit MODEL preview prune``, ``cbm concepts generate`` ...),
every option or positional that takes a path (found by its dest/metavar name) and every numeric one
(``type=int``/``float``). Each gets generated bad values with otherwise minimal valid arguments
(:data:`BASE`): a missing file, a folder where a file is expected, a file where a folder is
expected, an empty file, binary junk, a symlink loop, a file name that is not UTF-8, 1e308, 10**30,
NaN, infinity and a negative count.

For each case: exit code 2 (argparse's own usage error counts), no traceback, a message that names
the bad value (or its file name), no input file changed (a checksum of every file before and
after), and at most :data:`CASE_SECONDS` seconds. A new option is classified in :data:`ROLES` or
:data:`NOT_A_PATH` before the suite passes (``test_every_path_option_has_a_role``).

Commands run in-process through ``cbm.cli.main`` (a subprocess per case would take minutes).
Long jobs never start: ``cbm app``'s server, ``cbm demo``'s pipeline and ``cbm run``'s experiment
are replaced by a stub that stops the case once every argument check has passed (see
``_no_long_jobs``); such a case counts as "reached the job" and passes only where it is listed in
:data:`ACCEPTED`.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import signal
import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from cbm.cli import build_parser, main

#: Wall-clock limit of one case (in-process, so an alarm stops it).
CASE_SECONDS = 20
#: Words in a dest or metavar that mark an argument as a path.
PATH_WORDS = ("model", "data", "out", "path", "file", "dir", "image", "manifest", "config", "concepts",
              "cache", "bank", "root", "embeddings", "input", "json", "experiment", "source", "weights",
              "pretrained", "plots", "csv", "html", "candidate", "positives", "negatives", "classes",
              "annotations", "class_map")


# -- the argparse tree ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Arg:
    command: tuple[str, ...]  # ("edit", "preview", "prune")
    flag: str                 # "--data", or the dest of a positional
    dest: str
    positional: bool
    kind: str                 # "path", "int" or "float"

    @property
    def key(self) -> str:
        return " ".join(self.command) + " " + self.flag


def walk(parser: argparse.ArgumentParser, command: tuple[str, ...] = (), inherited: tuple = ()):
    """Yield ``(command, actions)`` for every leaf subcommand; positionals of parents are inherited."""
    own = [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._VersionAction,
                                                            argparse._SubParsersAction))]
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield command, (*inherited, *own)
        return
    for sub in subs:
        for name, child in sub.choices.items():
            yield from walk(child, (*command, name), (*inherited, *own))


def classify(action: argparse.Action) -> str | None:
    if not isinstance(action, (argparse._StoreAction, argparse._AppendAction)) or action.choices:
        return None
    if action.type is int:
        return "int"
    if action.type is float:
        return "float"
    words = f"{action.dest} {action.metavar or ''}".lower().replace("-", "_")
    return "path" if any(w in words for w in PATH_WORDS) else None


def leaf_commands() -> dict[tuple[str, ...], list[Arg]]:
    out = {}
    for command, actions in walk(build_parser()):
        if not command:
            continue
        args = []
        for a in actions:
            kind = classify(a)
            if kind:
                flag = a.option_strings[-1] if a.option_strings else a.dest
                args.append(Arg(command, flag, a.dest, not a.option_strings, kind))
        out[command] = args
    return out


LEAVES = leaf_commands()

# -- what each path argument is ----------------------------------------------------------------------
# in: a file read; in-dir: a folder read; in-any: a file or a folder read; out: a file written;
# out-dir: a folder written.
ROLES = {
    "embed source": "in-any", "embed --pretrained": "in", "embed --cache-dir": "out-dir", "embed --root": "in-dir",
    "concepts generate --out": "out-dir", "concepts generate --classes": "in", "concepts generate --input": "in",
    "concepts generate --cache-dir": "out-dir", "concepts generate --pretrained": "in",
    "concepts filter bank": "in-dir", "concepts filter --out": "out-dir", "concepts filter --classes": "in",
    "concepts filter --pretrained": "in", "concepts filter --images": "in-any",
    "concepts select bank": "in-dir", "concepts select --out": "out-dir", "concepts select --embeddings": "in-any",
    "concepts select --class-map": "in",
    "concepts search bank": "in-dir", "concepts search --embeddings": "in-any",
    "concepts show bank": "in-dir",
    "train --concepts": "in-dir", "train --data": "in-any", "train --class-map": "in", "train --out": "out-dir",
    "eval model_dir": "in-dir", "eval --data": "in-any", "eval --json": "out", "eval --annotations": "in",
    "eval --plots": "out-dir",
    "explain model": "in-dir", "explain --image": "in", "explain --pretrained": "in", "explain --data": "in",
    "discover model": "in-dir", "discover --data": "in-any", "discover --out": "out-dir",
    "discover --images": "in-dir", "discover --concepts": "in-dir",
    "app model_dir": "in-dir", "demo --out": "out-dir",
    "run experiment": "in", "run --out": "out-dir",
    "predict model": "in-dir", "predict source": "in-any", "predict --out": "out", "predict --root": "in-dir",
    "predict --pretrained": "in",
    "report model": "in-dir", "report --data": "in", "report --output": "out",
    "edit history --out": "out",
}
#: The same argument on every `cbm edit MODEL ACTION` (and `... preview ACTION`).
EDIT_ROLES = {"model": "in-dir", "--data": "in", "--from-candidate": "in", "--positives": "in", "--negatives": "in"}
ROLES.update({a.key: EDIT_ROLES[a.flag] for args in LEAVES.values() for a in args
              if a.command[0] == "edit" and a.flag in EDIT_ROLES})

#: Arguments whose name looks like a path but that are not one.
NOT_A_PATH = {
    "concepts generate --model": "the LLM's name",
    "eval --interventions": "a policy name",
    "demo --llm": "the LLM's name",
}

# -- bad values --------------------------------------------------------------------------------------
BAD_PATHS = {
    "in": ("missing", "folder", "empty", "junk", "loop", "not-utf8"),
    "in-dir": ("missing", "file", "empty-folder", "loop", "not-utf8"),
    "in-any": ("missing", "empty", "junk", "empty-folder", "loop", "not-utf8"),
    "out": ("folder", "under-a-file"),
    "out-dir": ("file", "under-a-file"),
}
BAD_NUMBERS = {
    "int": ("10**30", "-1", "1e308", "nan"),
    "float": ("nan", "inf", "-inf", "1e308", "-1"),
}

#: Bad-looking values a command rightly accepts (it ends with exit 0, or reaches a long job, and changes no
#: input). Key: "<command> <flag>" for every bad value, or "<command> <flag>=<value>".
_MORE_IS_ALL = "a number above what there is means all of it"
_RAY_ONLY = "applies to --engine ray only"
_OTHER_SOURCES = "applies to other --source values (llm, textbook, cav, text, labo); unused with --source file"
ACCEPTED = {
    **{f"{c} --top=10**30": _MORE_IS_ALL for c in ("explain", "edit suggest", "discover", "concepts search")},
    "embed --limit": "applies to the built-in datasets only (fashion-mnist, digits)",
    "embed --root": "applies to a manifest only; the source here is a folder",
    "embed --batch-size=10**30": _MORE_IS_ALL, "embed --max-pixels=10**30": "a limit above every image",
    "explain --max-pixels=10**30": "a limit above every image", "concepts show --limit=10**30": _MORE_IS_ALL,
    "embed --workers": _RAY_ONLY, "embed --cpus-per-worker": _RAY_ONLY, "concepts search --workers": _RAY_ONLY,
    **{f"concepts generate {f}": _OTHER_SOURCES for f in ("--classes", "--cache-dir", "--timeout", "--max-retries",
                                                          "--time-budget", "--concurrency", "--top-k", "--pretrained",
                                                          "--image-size")},
    "concepts select --class-map": "applies with --embeddings only",
    "concepts filter --max-length=10**30": _MORE_IS_ALL, "concepts select --per-class=10**30": _MORE_IS_ALL, "concepts select --total=10**30": _MORE_IS_ALL,
    "explain --pretrained": "applies with --image only; the case explains a --sample",
    "explain --image-size": "applies with --image only; the case explains a --sample",
    **{f"edit {p}{a}=-1": "a negative weight is a weight" for p in ("", "preview ")
       for a in ("set-weight --value", "scale --factor", "add-concept --weight")},
    "discover --images": "applies to an embedding cache's ids; the data here is a .npz",
    "discover --evidence=10**30": "applies with --out only",
    "eval --seed": "the seed of --data synthetic only; reaches the metrics (the long job here)",
    "eval --specificity": "multi-label models only; reaches the metrics (the long job here)",
    "demo --seed": "any integer seeds the demo; reaches the pipeline (the long job here)",
}
#: Bad values that still get through: what is left of issue 29. Each runs as a strict expected failure,
#: so fixing one fails the suite until it is taken off this list.
KNOWN_GAPS = {
    "concepts generate --input=junk": "binary junk is read as a concept list",
    "concepts generate --input=not-utf8": "binary junk is read as a concept list",
    **{f"concepts filter --classes={v}": "an empty or binary classes file is not refused"
       for v in ("empty", "junk", "not-utf8")},
    "concepts filter --max-length=-1": "a negative length is not refused",
    "concepts filter --class-similarity": "not range-checked ([0, 1])",
    "concepts filter --duplicate-similarity": "not range-checked ([0, 1])",
    "concepts filter --activation-cutoff": "not range-checked",
    "concepts select --per-class=-1": "a negative budget is not refused",
    "concepts select --total=-1": "a negative budget is not refused",
    **{f"concepts select --weights={v}": "non-finite, huge or negative weights are not refused"
       for v in ("nan", "inf", "1e308", "-1")},
    "concepts show --limit=-1": "a negative count is not refused",
    "explain --top=-1": "a negative count is not refused",
    "explain --max-pixels=-1": "a negative limit is not refused with --sample",
    "edit suggest --top=-1": "a negative count is not refused",
    **{f"edit {p}add-concept --weight={v}": "a non-finite or huge weight is not refused"
       for p in ("", "preview ") for v in ("nan", "inf", "-inf", "1e308")},
    "eval --annotations": "read after the metrics (minutes on a large set), not before",
    "demo --out": "a file as --out is found by the pipeline, not before it starts",
    "demo --image-size=10**30": "not range-checked before the pipeline starts",
    "demo --image-size=-1": "not range-checked before the pipeline starts",
    "demo --n-train=10**30": "refused, but the message states the limit, not the value given",
    "demo --n-shifted=10**30": "refused, but the message states the limit, not the value given",
}
#: Commands whose minimal arguments stop before some options are read: there a refusal need not name
#: the value (exit 2, no traceback, nothing changed still hold). The world's model records no image
#: encoder, so `cbm predict` on images stops there; tests/cli/test_predict_cmd.py covers the rest.
STOPS_EARLY = {"predict --top", "predict --batch-size", "predict --root", "predict --max-pixels",
               "report --edit"}  # the world's model has no edit history to report on
#: Extra arguments for one argument's cases, so that the argument is read at all.
WITH = {"concepts filter --pretrained": ["--encoder", "mobilenet_v2"]}


def listed(table: dict, arg: Arg, value: str) -> str | None:
    return table.get(f"{arg.key}={value}") or table.get(arg.key)


@dataclass(frozen=True)
class Case:
    arg: Arg
    value: str

    @property
    def id(self) -> str:
        return f"{self.arg.key}={self.value}"


def generate_cases() -> list[Case]:
    cases = []
    for args in LEAVES.values():
        for arg in args:
            if arg.kind == "path":
                role = ROLES.get(arg.key)
                if role is None:
                    continue  # not a path (NOT_A_PATH); test_every_path_option_has_a_role keeps this honest
                cases += [Case(arg, v) for v in BAD_PATHS[role]]
            else:
                cases += [Case(arg, v) for v in BAD_NUMBERS[arg.kind]]
    return cases


CASES = generate_cases()

# -- minimal valid arguments per command -------------------------------------------------------------
# "<dest>" marks a positional's slot; "{name}" is a file of the module's world (see `world_files`).
_EDIT_WEIGHT = {"prune": ["--concept", "{concept}"], "set-weight": ["--concept", "{concept}", "--value", "0.5"],
                "scale": ["--concept", "{concept}", "--factor", "0.5"], "remove": ["--concept", "{concept}"],
                "prior": [], "erase": ["--concept", "{concept}"], "refit-without": ["--concept", "{concept}"],
                "add-concept": ["--name", "new", "--positives", "0,1,2", "--negatives", "3,4,5"]}
BASE = {
    "embed": ["<source>", "--image-size", "32", "--batch-size", "4", "--device", "cpu", "--cache-dir",
              "{out}/cache", "--no-progress"],
    "concepts generate": ["--source", "file", "--input", "{concepts_txt}", "--out", "{out}/bank"],
    "concepts filter": ["<bank>", "--out", "{out}/bank"],
    "concepts select": ["<bank>", "--per-class", "1", "--out", "{out}/bank"],
    "concepts search": ["<bank>", "--embeddings", "{emb}", "--concept", "{concept}"],
    "concepts show": ["<bank>"],
    "train": ["--method", "labo", "--concepts", "{bank}", "--data", "{data}", "--out", "{out}/m", "--quiet",
              "--param", "max_epochs=2"],
    "eval": ["<model_dir>"],
    "explain": ["<model>", "--sample", "0"],
    "discover": ["<model>", "--top", "2"],
    "app": ["<model_dir>"],
    "demo": ["--quick", "--out", "{out}/demo", "--no-progress"],
    "run": ["<experiment>", "--dry-run", "--out", "{out}/run"],
    "predict": ["<model>", "<source>", "--out", "{out}/p.csv", "--no-progress"],
    "report": ["<model>", "--sample", "0", "--output", "{out}/r.html"],
    **{f"edit {a}": ["<model>", a, *rest, "--dry-run"] for a, rest in _EDIT_WEIGHT.items()},
    **{f"edit preview {a}": ["<model>", "preview", a, *rest] for a, rest in _EDIT_WEIGHT.items()},
    "edit repair": ["<model>", "repair", "--class", "{cls}", "--concept", "{concept}"],
    "edit suggest": ["<model>", "suggest"],
    "edit history": ["<model>", "history", "--format", "csv", "--out", "{out}/audit.csv"],
    **{f"edit {a}": ["<model>", a] for a in ("undo", "redo", "discard", "save", "rebase")},
    "edit revert": ["<model>", "revert", "<to_version>"],
    "edit diff": ["<model>", "diff", "<v1>"],
}
#: Positional slots filled when they are not the argument under test.
POSITIONALS = {"<model>": "{model}", "<model_dir>": "{model}", "<bank>": "{bank}", "<source>": "{images}",
               "<experiment>": "{toml}", "<to_version>": "1", "<v1>": "1"}
#: Giving the first flag drops the second from the base (they exclude each other).
EXCLUSIVE = {"--image": "--sample", "--edit": "--sample", "--from-candidate": "--positives",
             "--total": "--per-class"}
#: File name endings that make a bad path look like what the argument expects.
SUFFIX = {"--classes": ".txt", "--class-map": ".json", "experiment": ".toml", "--image": ".png",
          "--pretrained": ".safetensors", "--annotations": ".csv", "--positives": ".txt", "--negatives": ".txt",
          "--from-candidate": ".json", "--json": ".json", "--output": ".html", "--input": ".txt"}


# -- the world the commands run on --------------------------------------------------------------------
@pytest.fixture(scope="module")
def world_files(tmp_path_factory):
    """A tiny model directory (LaBo), its data, bank, images, manifest, concept list and experiment file."""
    from PIL import Image
    from world_models import save_on_world

    from cbm.data import make_concept_world

    root = tmp_path_factory.mktemp("generated")
    world = make_concept_world(n_classes=3, n_concepts=6, n_samples=150, dim=16, random_state=0)
    save_on_world(world, root / "model", max_epochs=20, with_data=True)
    shutil.copy(root / "model" / "data.npz", root / "data.npz")
    world.bank.save(root / "bank")
    np.save(root / "emb.npy", world["train"].X.astype(np.float32))
    for cls in ("a", "b"):
        (root / "images" / cls).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (8, 8), (60 * i, 100, 0)).save(root / "images" / cls / f"{i}.png")
    (root / "concepts.txt").write_text("red crown\nlong tail\n", encoding="utf-8")
    (root / "exp.toml").write_text('name = "tiny"\nseeds = [0]\n[data]\nsource = "synthetic"\n'
                                   'params = { n_classes = 2, n_concepts = 4, n_samples = 60 }\n'
                                   '[concepts]\nsource = "data"\n[method]\nname = "pcbm"\n'
                                   'params = { n_lambdas = 1, max_iter = 50, device = "cpu" }\n', encoding="utf-8")
    return {"root": root, "model": root / "model", "bank": root / "bank", "data": root / "data.npz",
            "images": root / "images", "emb": root / "emb.npy", "concepts_txt": root / "concepts.txt",
            "toml": root / "exp.toml", "concept": world.bank.names[0], "cls": world.class_names[0]}


class _LongJob(BaseException):
    """Raised instead of starting a server, the demo pipeline or an experiment run."""


class _CaseTimeout(BaseException):
    """A case ran past CASE_SECONDS (a BaseException, so the CLI's handlers cannot swallow it)."""


@pytest.fixture(scope="module")
def _no_long_jobs():
    """`cbm app` would serve until stopped, `cbm demo` runs for a minute or more, `cbm eval`'s ANEC heads
    take tens of seconds on 2 cores and `cbm embed` runs a network over every image: their argument checks
    run (the encoder is built, once per settings), then the stub below stops the case (it counts as
    reached the job)."""
    import cbm.cli.app_cmd
    import cbm.demo.pipeline
    import cbm.encoders
    import cbm.metrics
    import cbm.store

    def stop(*_a, **_k):
        raise _LongJob

    mp = pytest.MonkeyPatch()
    mp.setattr(cbm.cli.app_cmd, "serve", stop)
    mp.setattr(cbm.demo.pipeline, "run_demo", stop)
    mp.setattr(cbm.metrics, "anec_heads", stop)
    mp.setattr(cbm.store.EmbeddingStore, "compute_shard", staticmethod(stop))
    built, create = {}, cbm.encoders.create_encoder

    def create_once(*a, **k):  # an encoder that was built is reused (a refused one raises every time)
        key = repr((a, sorted(k.items())))
        if key not in built:
            built[key] = create(*a, **k)
        return built[key]

    mp.setattr(cbm.encoders, "create_encoder", create_once)
    yield
    mp.undo()


# -- running one case ---------------------------------------------------------------------------------
@dataclass
class Outcome:
    code: int | str  # exit code, "job" when a long job was reached
    out: str
    err: str
    seconds: float
    error: BaseException | None = None


def run_cli(argv: list[str]) -> Outcome:
    """``cbm argv`` in this process, with stdout/stderr encoded as Python does in a UTF-8 locale."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace", write_through=True)

    def alarm(*_):
        raise _CaseTimeout

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
    start, error, code = time.perf_counter(), None, None
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 2
    except _LongJob:
        code = "job"
    except BaseException as e:  # noqa: BLE001 - a traceback is what this suite looks for
        error = e
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    seconds = time.perf_counter() - start

    def text(stream):
        return stream.buffer.getvalue().decode("utf-8", "replace")

    return Outcome(code, text(out), text(err), seconds, error)


def make_bad(kind: str, where: Path, suffix: str) -> str:
    """Create the bad path ``kind`` under ``where`` and return it as an argument."""
    where.mkdir(parents=True)
    if kind == "missing":
        return str(where / f"missing{suffix}")
    if kind in ("folder", "empty-folder"):
        (where / f"folder{suffix}").mkdir()
        return str(where / f"folder{suffix}")
    if kind == "file":
        (where / "afile").write_bytes(b"\x00junk")
        return str(where / "afile")
    if kind == "empty":
        (where / f"empty{suffix}").write_bytes(b"")
        return str(where / f"empty{suffix}")
    if kind == "junk":
        (where / f"junk{suffix}").write_bytes(bytes(range(256)) * 4)
        return str(where / f"junk{suffix}")
    if kind == "loop":
        os.symlink(f"loop{suffix}", where / f"loop{suffix}")
        return str(where / f"loop{suffix}")
    if kind == "not-utf8":
        path = where / os.fsdecode(b"bad-\xff" + suffix.encode())
        path.write_bytes(b"\xff\xfe junk")
        return str(path)
    if kind == "under-a-file":
        (where / "afile").write_bytes(b"")
        return str(where / "afile" / f"inside{suffix}")
    raise AssertionError(kind)


def number(value: str) -> str:
    return str(10**30) if value == "10**30" else value


def build_argv(case: Case, files: dict, case_dir: Path) -> tuple[list[str], str]:
    """The case's argv and the bad value as given."""
    arg = case.arg
    if arg.kind == "path":
        bad = make_bad(case.value, case_dir / "bad", SUFFIX.get(arg.flag, ".npz"))
        if arg.flag == "--from-candidate":
            bad += "#1"
    else:
        bad = number(case.value)
    base = [*BASE[" ".join(arg.command)], *WITH.get(arg.key, [])]
    if arg.flag in EXCLUSIVE and EXCLUSIVE[arg.flag] in base:
        i = base.index(EXCLUSIVE[arg.flag])
        del base[i:i + 2]
    if arg.positional and f"<{arg.dest}>" in base:
        base[base.index(f"<{arg.dest}>")] = bad
    elif arg.positional:  # an optional positional (edit diff V1 [V2])
        base.append(bad)
    elif arg.flag == "--weights":  # two numbers
        base += [arg.flag, bad, bad]
    else:  # --flag=VALUE: argparse takes "-inf" as the value, not as an option
        if arg.flag in base:
            del base[base.index(arg.flag):base.index(arg.flag) + 2]
        base.append(f"{arg.flag}={bad}")
    values = {k: str(v) for k, v in files.items()} | {"out": str(case_dir / "out")}
    argv = [t if bad in t else POSITIONALS.get(t, t).format(**values) for t in base]
    return [*arg.command[:1], *argv] if arg.command[0] == "edit" else [*arg.command, *argv], bad


def snapshot(root: Path, skip: Path) -> dict[str, str]:
    """A checksum of every file under ``root`` but ``skip`` (symlinks by their target)."""
    sums = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == skip or skip in here.parents:
            dirnames.clear()
            continue
        for name in filenames + [d for d in dirnames if (here / d).is_symlink()]:
            p = here / name
            sums[str(p)] = os.readlink(p) if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest()
    return sums


def spellings(bad: str) -> set[str]:
    """Ways a message may name ``bad``: as given, escaped by repr, its file name, its folder's name."""
    if bad.endswith("#1"):
        bad = bad[:-2]
    names = {bad}
    if os.sep in bad:
        names |= {Path(bad).name, Path(bad).parent.name}
    else:
        try:
            x = float(bad)
            names |= {str(x), repr(x), f"{x:g}"}
        except ValueError:
            pass
    return names | {repr(n)[1:-1] for n in names}


def check(case: Case, files: dict, case_dir: Path) -> str | None:
    """Run ``case``; None when it behaved, else what went wrong (one line)."""
    argv, bad = build_argv(case, files, case_dir)
    own = case_dir / "out"
    before = snapshot(files["root"], own)
    got = run_cli(argv)
    if got.error is not None:
        if isinstance(got.error, _CaseTimeout):
            return f"still running after {CASE_SECONDS} s"
        return f"traceback: {type(got.error).__name__}: {got.error}"
    text = got.out + got.err
    if "Traceback" in text:
        return "a traceback was printed"
    accepted = listed(ACCEPTED, case.arg, case.value)
    if got.code == 0 or got.code == "job":
        if not accepted:
            return f"accepted (exit {got.code}); add it to ACCEPTED with the reason if that is right"
        after = snapshot(files["root"], own)
        if case.arg.kind == "path" and case.arg.flag.startswith("--out"):
            after = {k: v for k, v in after.items() if not k.startswith(bad)}
        changed = sorted(set(before.items()) ^ set(after.items()))
        return f"changed {changed[0][0]}" if changed else None
    if got.code != 2:
        return f"exit {got.code}: {got.err.strip()[-300:]}"
    if "usage:" in got.err:  # argparse's own refusal (an int that is not one): its message and usage
        return None
    if case.arg.key not in STOPS_EARLY and not any(s in got.err for s in spellings(bad)):
        return f"message does not name {bad!r}: {got.err.strip()[-300:]}"
    changed = sorted(set(before.items()) ^ set(snapshot(files["root"], own).items()))
    if changed:
        return f"refused but changed {changed[0][0]}"
    return None


# -- the tests ------------------------------------------------------------------------------------------
def test_every_command_has_minimal_arguments_and_every_path_argument_a_role():
    assert sorted(" ".join(c) for c in LEAVES if " ".join(c) not in BASE) == []
    paths = {a.key for args in LEAVES.values() for a in args if a.kind == "path"}
    assert sorted(paths - set(ROLES) - set(NOT_A_PATH)) == []


def test_the_generated_cases_cover_every_command(capsys):
    commands = {case.arg.command for case in CASES}
    with capsys.disabled():
        print(f"\n{len(CASES)} generated bad-input cases over {len(commands)} commands "
              f"({sum(a.kind == 'path' for args in LEAVES.values() for a in args)} path and "
              f"{sum(a.kind != 'path' for args in LEAVES.values() for a in args)} numeric arguments)")
    assert len(CASES) >= 600
    assert commands >= {("train",), ("edit", "preview", "prune"), ("concepts", "generate"), ("predict",)}


def _param(case: Case):
    gap = listed(KNOWN_GAPS, case.arg, case.value)
    marks = [pytest.mark.xfail(reason=f"issue 29, left: {gap}", strict=True)] if gap else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_a_bad_value_is_one_clear_refusal(case, world_files, _no_long_jobs, tmp_path):
    problem = check(case, world_files, tmp_path)
    assert problem is None, f"cbm {case.arg.key} {case.value}: {problem}"
