"""EditEffect.verdict says in plain words whether an edit repairs the affected class, repairs it only in
part, or gains by suppressing it, judged against "never predict k" on the target split."""

import pandas as pd
import pytest

from cbm.edits import Prune
from cbm.edits.preview import EditEffect


def _effect(acc: tuple[float, float], recall: tuple[float, float], never: float) -> EditEffect:
    rows = [("shifted", "all", *acc), ("shifted", "class=Shirt", *recall)]
    accuracy = pd.DataFrame(rows, columns=["split", "group", "before", "after"])
    accuracy["delta"] = accuracy["after"] - accuracy["before"]
    baselines = pd.DataFrame([("shifted", "CBM never predicts Shirt", never, 0.0),
                              ("shifted", "black box", 0.69, 0.3)], columns=["split", "model", "accuracy", "recall"])
    return EditEffect(edit=Prune("Shirt", "tag"), changes=pd.DataFrame(), accuracy=accuracy, changed={},
                      affected="Shirt", baselines=baselines, target="shifted")


@pytest.mark.parametrize(("acc", "recall", "never", "starts"), [
    ((0.70, 0.75), (0.19, 0.47), 0.78, "A partial repair"),      # recall up, but never-k still ahead
    ((0.70, 0.75), (0.19, 0.05), 0.78, "The edit gains +5.0 points on 'shifted' only by suppressing"),
    ((0.70, 0.80), (0.19, 0.47), 0.78, "The edit repairs the model"),
    ((0.70, 0.69), (0.19, 0.20), 0.78, "The edit does not help"),
])
def test_verdict_tells_repair_from_suppression(acc, recall, never, starts):
    words = _effect(acc, recall, never).verdict()
    assert words.startswith(starts), words
    if starts == "A partial repair":
        assert "19.0% -> 47.0%" in words and "78.0% vs 75.0%" in words


@pytest.mark.parametrize(("never", "words"), [(0.818, "does 6.8 points better (81.8% vs 75.0%)"),
                                             (0.752, "does as well (75.2% vs 75.0%)")])
def test_suppression_verdict_says_how_much_better_never_predicting_does(never, words):
    assert words in _effect((0.70, 0.75), (0.19, 0.05), never).verdict()


def test_baselines_table_keeps_the_evaluation_order_with_train_last():
    effect = _effect((0.70, 0.75), (0.19, 0.47), 0.78)
    effect.baselines = pd.DataFrame([(s, m, 0.5, 0.0) for s in ("train", "test", "shifted")
                                     for m in ("CBM never predicts Shirt", "black box")],
                                    columns=["split", "model", "accuracy", "recall"])
    table = effect.baselines_table()
    assert list(table.columns) == ["test", "shifted", "train"]
    assert list(table.index) == ["CBM never predicts Shirt", "black box"]


@pytest.mark.parametrize(("edit", "words"), [
    (Prune("Shirt", "tag"), "prune “tag” for Shirt (its weight set to 0)"),
    (Prune(None, "tag"), "prune “tag” for every class (its weight set to 0)"),
])
def test_an_edit_is_described_in_words_for_people(edit, words):
    assert edit.plain() == words
    assert edit.describe() == f"prune(cls={edit.cls!r}, concept='tag')"  # the exact record stays as it was
