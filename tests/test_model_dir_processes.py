"""Model directories under real concurrency and crashes: several processes edit and save one
directory at once, and processes killed by PID in the middle of a save leave nothing broken.

Workers run in separate processes started from a fork server that has imported cbmkit once, so
each worker costs milliseconds; every worker opens its own :class:`EditSession`, as a CLI call does.
"""

import multiprocessing as mp
import os
import signal

import numpy as np
import pytest

from cbm.edits import SetWeight
from cbm.edits.history import EditSession, read_history
from cbm.exceptions import EditError
from cbm.io import list_versions, load_config, load_model

CLASSES = ("cardinal", "blue jay", "goldfinch")


@pytest.fixture(scope="module")
def ctx():
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["cbm.edits.history", "cbm.models", "cbm.models.labo"])
    return ctx


def value(worker: int, i: int) -> float:
    return float(1 + 10 * worker + i)


def cell(model, worker: int, i: int) -> float:
    return float(model.coef_[model.class_names_.index(CLASSES[worker]), i])


# -- workers (run in child processes) --------------------------------------------------------
def apply_edits(path, worker, n, save_every, results, started=None):
    """Apply ``n`` edits (each its own CLI-like session), saving after every ``save_every``."""
    if started is not None:
        started.set()
    saved, nothing = [], 0
    for i in range(n):
        s = EditSession(path)
        concept = s.model.concept_names_[i % len(s.model.concept_names_)]
        s.apply(SetWeight(CLASSES[worker], concept, value(worker, i)), why=f"w{worker}")
        if save_every and (i + 1) % save_every == 0:
            try:
                saved.append(EditSession(path).save(f"w{worker} e{i}"))
            except EditError as e:  # another worker's save already took this edit
                assert "nothing to save" in str(e)
                nothing += 1
    results.put((worker, saved, nothing))


def save_and_pause(path, stage, ready):
    """Apply one edit and save, pausing (to be killed) at ``stage`` of the save."""
    import time

    import cbm.edits.history
    import cbm.io

    def pause():
        ready.set()
        time.sleep(60)

    def pause_before_writing(name):
        real_json = cbm.io.atomic_write_json

        def write_json(p, obj):
            if p.name == name:
                pause()
            real_json(p, obj)

        cbm.io.atomic_write_json = write_json

    if stage == "writing":  # version folder half written
        pause_before_writing("config.json")
    elif stage == "renamed":  # version folder in place, model.json not yet updated
        pause_before_writing("model.json")
    elif stage == "recorded":  # model.json updated, history.json not yet
        real_save = cbm.edits.history.save_model

        def save(*a, **k):
            v = real_save(*a, **k)
            pause()
            return v

        cbm.edits.history.save_model = save
    s = EditSession(path)
    s.apply(SetWeight("cardinal", s.model.concept_names_[0], 42.0), why=stage)
    s.save(stage)


def run_all(ctx, target, argss, timeout=60):
    procs = [ctx.Process(target=target, args=args) for args in argss]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
        assert p.exitcode == 0, f"worker {p.name} exited with {p.exitcode}"


# -- tests ------------------------------------------------------------------------------------
def test_edits_applied_by_three_processes_at_once_all_land_in_the_log(ctx, labo_dir):
    results = ctx.Queue()
    run_all(ctx, apply_edits, [(labo_dir, w, 5, 0, results) for w in range(3)])
    log = read_history(labo_dir / "history.json")
    assert len(log["entries"]) == 15 and {e["status"] for e in log["entries"]} == {"pending"}
    assert sorted(e["seq"] for e in log["entries"]) == list(range(1, 16))
    model = EditSession(labo_dir).model  # every edit replays on the saved version
    assert all(cell(model, w, i) == value(w, i) for w in range(3) for i in range(5))


def test_simultaneous_saves_put_every_edit_in_a_version_and_lose_none(ctx, labo_dir):
    results = ctx.Queue()
    run_all(ctx, apply_edits, [(labo_dir, w, 4, 1, results) for w in range(3)])
    saved = [v for _ in range(3) for v in results.get(timeout=5)[1]]
    versions = list_versions(labo_dir)
    assert sorted(saved) == versions[1:]  # every successful save is a version, numbers never reused
    log = read_history(labo_dir / "history.json")
    assert len(log["entries"]) == 12 and {e["status"] for e in log["entries"]} == {"saved"}
    for e in log["entries"]:  # the version that claims an edit holds it
        assert e["seq"] in load_config(labo_dir, e["version"])["edits"]["seqs"]
    final = load_model(labo_dir)
    assert all(cell(final, w, i) == value(w, i) for w in range(3) for i in range(4))
    assert [load_config(labo_dir, v)["parent"] for v in versions[1:]] == versions[:-1]


@pytest.mark.parametrize("stage", ["writing", "renamed", "recorded"])
def test_a_save_killed_by_pid_at_any_stage_loses_nothing_and_later_saves_work(ctx, labo_dir, stage):
    ready = ctx.Event()
    p = ctx.Process(target=save_and_pause, args=(labo_dir, stage, ready))
    p.start()
    assert ready.wait(30), "the worker never reached the pause"
    os.kill(p.pid, signal.SIGKILL)
    p.join(10)
    assert p.exitcode == -signal.SIGKILL

    s = EditSession(labo_dir)  # the next command repairs what the killed one left
    assert not [q.name for q in labo_dir.iterdir() if q.name.startswith(".v")]
    log = read_history(labo_dir / "history.json")
    [entry] = log["entries"]
    if stage == "writing":  # the save never happened: the edit is still pending on version 1
        assert list_versions(labo_dir) == [1] and entry["status"] == "pending"
    else:  # the version was written: it is recorded, and the edit is marked saved in it, once
        assert list_versions(labo_dir) == [1, 2] and (entry["status"], entry["version"]) == ("saved", 2)
        assert s.warnings
    assert cell(s.model, 0, 0) == 42.0
    s.apply(SetWeight("blue jay", s.model.concept_names_[1], 7.0))
    v = s.save()
    assert v == list_versions(labo_dir)[-1] == len(list_versions(labo_dir))
    assert cell(load_model(labo_dir), 0, 0) == 42.0 and cell(load_model(labo_dir), 1, 1) == 7.0


def test_random_kills_during_saves_never_break_the_directory(ctx, labo_dir):
    rng = np.random.default_rng(0)
    results = ctx.Queue()
    for _ in range(4):
        started = ctx.Event()
        p = ctx.Process(target=apply_edits, args=(labo_dir, 0, 10_000, 1, results, started))
        p.start()
        assert started.wait(30)
        p.join(rng.uniform(0.05, 0.5))
        assert p.exitcode is None  # still editing and saving: kill it wherever it is
        os.kill(p.pid, signal.SIGKILL)
        p.join(10)
    s = EditSession(labo_dir)
    s.apply(SetWeight("goldfinch", s.model.concept_names_[2], 3.0))
    v = s.save()
    versions = list_versions(labo_dir)
    assert v == versions[-1] and not [q.name for q in labo_dir.iterdir() if q.name.startswith(".v")]
    log = read_history(labo_dir / "history.json")
    assert len(log["entries"]) > 1 and {e["status"] for e in log["entries"]} == {"saved"}  # none lost
    final, last = load_model(labo_dir), {}
    for e in log["entries"]:  # the latest edit of each weight is in the final version
        last[e["edit"]["cls"], e["edit"]["concept"]] = e["edit"]["value"]
    assert all(final.coef_[final.class_names_.index(c), final.concept_names_.index(j)] == v
               for (c, j), v in last.items())
