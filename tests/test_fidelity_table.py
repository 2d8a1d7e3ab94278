"""The fidelity table (docs/verification.md) stays true: every row names a test that exists, the rows without a
released variant say so, and every measured difference is recomputed here and printed as measured.
Also the two "same" claims no other test checks: KnoBo's grounding is scikit-learn's class-balanced
logistic regression, and ``EraseConcept``'s eraser is concept-erasure's LEACE."""

import ast
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from docs_text import section

ROOT = Path(__file__).resolve().parents[1]
SECTION = "scikit-learn contract and fidelity to the released code"

#: tiny problems: one torch thread avoids thread hand-off costs on a shared CPU (and keeps them exact)
pytestmark = pytest.mark.usefixtures("one_thread")


def _cells(line: str) -> list[str]:
    """A table line's cells; ``\\|`` inside a cell is a literal bar."""
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def table_rows() -> list[dict[str, str]]:
    lines = [ln for ln in section(SECTION).splitlines() if ln.startswith("|")]
    head = _cells(lines[0])
    return [dict(zip(head, _cells(ln), strict=True)) for ln in lines[2:]]


ROWS = {r["method"]: r for r in table_rows()}


def test_the_table_has_every_column_and_method():
    assert list(next(iter(ROWS.values()))) == [
        "method", "paper", "released code", "cbmkit default", "reproduces the released code",
        "measured difference", "test"]
    assert {"KnoBo selection threshold and grounding L2", "KnoBo grounding", "ANEC (`cbm.metrics.anec`)",
            "LaBo `l1` and `diversity`", "PCBM-h residual", "Concept Matrix Search `normalize`",
            "LEACE eraser (`EraseConcept`)", "Concept-Centric Transformer", "Interventions: values and ties",
            "Interventions: CooP"} <= set(ROWS)


@pytest.mark.parametrize("method", list(ROWS))
def test_every_row_names_an_existing_test(method):
    ref = re.fullmatch(r"`([\w/]+\.py)::(\w+)`", ROWS[method]["test"])
    assert ref, f"{method}: the row must name one test as `file::function`"
    path, name = ROOT / ref.group(1), ref.group(2)
    assert path.is_file(), f"{method}: {path} does not exist"
    functions = {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)}
    assert name in functions and name.startswith("test_"), f"{method}: {ref.group(1)} has no test {name}"


def test_rows_without_a_released_variant_say_so():
    for method in ("Concept-Centric Transformer", "Interventions: values and ties", "Interventions: CooP"):
        assert ROWS[method]["reproduces the released code"].startswith(("no variant", "no variant yet")), method
    for method, row in ROWS.items():
        cell = row["reproduces the released code"]
        if row["cbmkit default"].startswith(("the released", "the same")):
            assert cell.startswith("same (the default"), method


# -- measured differences, recomputed ------------------------------------------------------------
def _world():
    from cbm.data import make_concept_world

    return make_concept_world(random_state=0)


def _knobo() -> list[float]:
    from cbm.models.knobo import KnoBo

    w = _world()
    tr, te = w["train"], w["test"]
    return [KnoBo(concepts=w.bank, variant=v, device="cpu").fit(tr.X, tr.y).score(te.X, te.y)
            for v in ("project", "released")]


def _anec() -> list[float]:
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from test_metrics import _sparse_problem
    finally:
        sys.path.remove(str(ROOT / "tests"))
    from cbm.metrics import anec

    A, y, model = _sparse_problem()
    return [anec(model, A, y, k, train=(A, y), path=p) for k in (1, 5) for p in ("project", "released")]


def _pcbm_h() -> list[float]:
    from cbm.data import make_concept_world
    from cbm.models.pcbm import PCBMHybrid

    w = make_concept_world(n_classes=4, n_concepts=13, n_samples=400, concepts_per_class=3, noise=0.5,
                           random_state=0)   # tests/models/test_pcbm.py's world
    bank, tr, te = w.bank.subset(list(range(0, 13, 2))), w["train"], w["test"]
    return [PCBMHybrid(concepts=bank, lam=0.01, device="cpu", residual_solver=s).fit(tr.X, tr.y).score(te.X, te.y)
            for s in ("adam", "ridge")]


def _cms() -> list[float]:
    from cbm.models.cms import ConceptMatrixSearch

    w = _world()
    tr, te = w["train"], w["test"]
    return [ConceptMatrixSearch(concepts=w.bank, class_embeddings=w.class_embeddings, variant=v, normalize=n,
                                device="cpu").fit(tr.X, tr.y).score(te.X, te.y)
            for v in ("similarity", "max") for n in ("l1", "sum")]


def _interventions() -> list[float]:
    import cbm
    from cbm.models import create_model
    from cbm.research.annotations import from_array
    from cbm.research.interventions import intervention_curves, intervention_values

    w = cbm.make_concept_world(n_classes=4, n_concepts=12, n_samples=240, random_state=1)  # as test_interventions
    m = create_model("pcbm", concepts=w.bank, n_lambdas=1, max_iter=300, device="cpu").fit(w["train"].X, w["train"].y)
    truth = from_array(w["test"].concepts, w.bank.names, source="world")
    X, y = w["test"].X, w["test"].y
    own = intervention_curves(m, X, y, truth, policies=["uncertainty", "coop"])
    train = intervention_curves(m, X, y, truth, policies=["uncertainty", "coop"],
                                values=intervention_values(m.transform(w["train"].X)))
    return [c.area(p) for p in ("uncertainty", "coop") for c in (own, train)]


MEASURED = {
    "KnoBo selection threshold and grounding L2": _knobo,
    "ANEC (`cbm.metrics.anec`)": _anec,
    "PCBM-h residual": _pcbm_h,
    "Concept Matrix Search `normalize`": _cms,
    "Interventions: values and ties": _interventions,
}


def _printed_numbers(cell: str) -> list[str]:
    return re.findall(r"\d+\.\d+", cell)


def test_a_row_either_prints_a_measured_number_recomputed_here_or_says_why_not():
    for method, row in ROWS.items():
        cell = row["measured difference"]
        if method in MEASURED:
            assert _printed_numbers(cell), method
        else:
            assert not _printed_numbers(cell) and cell.startswith(("same", "not measured")), method


@pytest.mark.parametrize("method", list(MEASURED))
def test_measured_difference_is_what_the_code_gives_now(method):
    printed = _printed_numbers(ROWS[method]["measured difference"])
    got = MEASURED[method]()
    assert len(got) == len(printed), f"{method}: {len(printed)} numbers printed, {len(got)} recomputed"
    decimals = [len(p.split(".")[1]) for p in printed]
    assert [f"{v:.{d}f}" for v, d in zip(got, decimals, strict=True)] == printed, method


# -- "same" claims checked here ------------------------------------------------------------------
def test_knobo_grounding_is_sklearns_balanced_logistic_regression():
    """Weights summing to 1 per concept, balanced over the label, and ``l2 |w|^2``: the objective is
    scikit-learn's ``class_weight="balanced"`` one with ``C = 1 / (2 l2 n)``, scaled by ``1 / (2 l2 n)``."""
    import torch
    import torch.nn.functional as F
    from sklearn.linear_model import LogisticRegression

    from cbm.models.knobo import _logistic_regressions, balanced_weights

    w = _world()
    X, labels = w["train"].X, w["train"].concepts[:, :4]
    Xn = F.normalize(torch.as_tensor(X, dtype=torch.float32), dim=1)
    pos = torch.as_tensor(labels > 0)
    l2, n = 1e-3, len(X)
    W, b = _logistic_regressions(Xn, pos.float(), balanced_weights(pos, torch.ones_like(pos), None), l2)
    for j in range(pos.shape[1]):
        ref = LogisticRegression(class_weight="balanced", C=1 / (2 * l2 * n), tol=1e-10, max_iter=10_000)
        ref.fit(Xn.numpy().astype(np.float64), labels[:, j])
        scale = np.abs(ref.coef_).max()
        np.testing.assert_allclose(W[j].numpy(), ref.coef_[0], atol=2e-3 * scale)
        np.testing.assert_allclose(b[j].item(), ref.intercept_[0], atol=2e-3 * scale)


def test_erase_concept_is_concept_erasures_leace():
    import torch

    from cbm.edits import EraseConcept, TrainingData
    from cbm.edits._refit_edits import leace_fitter
    from cbm.edits.repair import erase_with
    from cbm.models.knobo import KnoBo

    leace_fitter()  # imports concept_erasure without its torch.jit warning
    from concept_erasure import LeaceEraser

    w = _world()
    tr = w["train"]
    model = KnoBo(concepts=w.bank, device="cpu", max_epochs=5).fit(tr.X, tr.y, concept_labels=tr.concepts)
    edit, data = EraseConcept(model.concept_names_[0]), TrainingData(tr.X, tr.y)
    erased = erase_with(edit.fit_eraser(model, data), data.X)
    X64 = torch.as_tensor(data.X, dtype=torch.float64)
    z = torch.as_tensor(edit.training_flags(model, data), dtype=torch.float64)[:, None]
    want = LeaceEraser.fit(X64, z)(X64).numpy()
    np.testing.assert_allclose(erased, want, atol=1e-4 * np.abs(want).max())


def test_an_eraser_fitted_again_on_the_same_images_and_flags_is_the_same_and_not_shared():
    from cbm.edits import EraseConcept, TrainingData
    from cbm.models.knobo import KnoBo

    w = _world()
    tr = w["train"]
    model = KnoBo(concepts=w.bank, device="cpu", max_epochs=5).fit(tr.X, tr.y, concept_labels=tr.concepts)
    data = TrainingData(tr.X, tr.y)
    first = EraseConcept(model.concept_names_[0]).fit_eraser(model, data)
    first[0][:] = 0  # the caller's copy: the next fit is not changed by it
    again = EraseConcept(model.concept_names_[0]).fit_eraser(model, data)
    other = EraseConcept(model.concept_names_[1]).fit_eraser(model, data)
    assert np.abs(again[0]).max() > 0
    assert not np.allclose(again[1], other[1])  # other flags: another eraser
    assert [a.shape for a in again] == [a.shape for a in other]
