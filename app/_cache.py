"""Cached loads every page shares: the model and its edit session, the encoder, evaluation data,
predictions, suggestions, the out-of-distribution detector and occlusion maps.

Expensive things are cached (``st.cache_resource`` for the model and its edit session,
``st.cache_data`` for evaluation data and predictions), so switching pages and applying an edit
only redo the linear head. Cached predictions are keyed by a fingerprint of the head
(:func:`model_token`): an edit changes the token, nothing stale is ever shown.

Edits live in the model directory's history (:class:`cbm.edits.history.EditSession`), never only in
``st.session_state``, so a rerun or a reload of the page keeps them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from cbm import explain
from cbm.app._aliases import split_label
from cbm.edits.history import EditSession
from cbm.edits.preview import EvalSet, encode_labels, head_token, load_eval_data, suggest_edits
from cbm.encoders.rebuild import encoder_for
from cbm.encoders.record import EncoderRecord
from cbm.exceptions import CBMError, ModelDirError
from cbm.explain import softmax
from cbm.io import load_config, load_metrics
from cbm.metrics import accuracy
from cbm.models.multilabel import PRESENT_THRESHOLD, finding_probabilities, finding_report


@dataclass(frozen=True)
class SplitData:
    """One evaluation split of ``MODEL_DIR/data.npz``."""

    name: str
    X: np.ndarray
    y: np.ndarray
    domains: np.ndarray | None = None
    ids: np.ndarray | None = None
    images: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)


# -- the model and its edit session --------------------------------------------------------------
@st.cache_resource(show_spinner="Loading the model...")
def edit_session(path: str):
    """The model directory's edit session (pending edits persisted on disk), shared by pages."""
    return EditSession(path)


def current_model(path: Path):
    """The model with the pending edits applied; stops the page with a message on a problem."""
    try:
        return edit_session(str(path)).model
    except (CBMError, ValueError, KeyError, FileNotFoundError) as e:
        st.error(f"**The model in {str(path)!r} cannot be loaded.** {e}")
        st.info("Retrain it with `cbm train`, or open another version or directory.")
        st.stop()


def config(path: Path) -> dict[str, Any]:
    """The current version's ``config.json``."""
    return load_config(path)


def metrics(path: Path) -> dict[str, Any]:
    """The current version's saved ``metrics.json`` ({} when absent)."""
    return load_metrics(path)


# -- encoders --------------------------------------------------------------------------------
def encoder_record(path: Path) -> EncoderRecord | None:
    """The encoder recorded in the model config (``fingerprints["encoder"]``), or None."""
    return EncoderRecord.read((config(path).get("fingerprints") or {}).get("encoder") or None)


def encoder_spec(path: Path) -> str | None:
    """The recorded encoder as a cache key."""
    record = encoder_record(path)
    return None if record is None else json.dumps(record.to_dict(), sort_keys=True)


def encoder_label(path: Path) -> str:
    """Short name of the recorded encoder, for display ("mobilenet_v2")."""
    record = encoder_record(path)
    return "" if record is None else str(record.name)


def has_text_tower(path: Path) -> bool:
    """Whether the recorded encoder embeds text too (so a concept can be added from text)."""
    from cbm.encoders import has_text_tower as known

    record = encoder_record(path)
    return record is not None and known(record.label())


@st.cache_resource(show_spinner="Loading the encoder...")
def _encoder(spec: str, _model):
    return encoder_for(_model)


def model_encoder(path: Path):
    """The encoder the model was trained with, rebuilt and checked by the library, loaded once."""
    spec = encoder_spec(path)
    if spec is None:
        raise ModelDirError(f"The config of {str(path)!r} does not record its encoder "
                            "(fingerprints.encoder); retrain with `cbm train`, which records it.")
    return _encoder(spec, current_model(path))


# -- evaluation data ---------------------------------------------------------------------------
@st.cache_resource(show_spinner="Reading evaluation data...", max_entries=4)
def _load_splits(file: str, mtime: float) -> dict[str, SplitData]:
    try:
        data = load_eval_data(file)
    except CBMError as e:
        raise ModelDirError(str(e)) from None
    return {s: SplitData(s, d["X"], d["y"], *(d.get(k) for k in ("domains", "ids", "images")))
            for s, d in data.items()}


def eval_data(path: Path) -> dict[str, SplitData]:
    """The splits in ``MODEL_DIR/data.npz`` in display order (read once); {} when absent."""
    file = Path(path) / "data.npz"
    if not file.is_file():
        return {}
    return _load_splits(str(file), file.stat().st_mtime)


def require_eval_data(path: Path) -> dict[str, SplitData]:
    """:func:`eval_data`, or a message saying how to add data, then stop."""
    try:
        data = eval_data(path)
    except ModelDirError as e:
        st.error(str(e))
        st.stop()
    if not data:
        st.info(f"No evaluation data in {str(path)!r}: `data.npz` is missing. `cbm train` and "
                "`cbm demo` write it next to the model; until then only the Model, Concepts "
                "and Upload pages work.")
        st.stop()
    return data


# -- predictions (cached by head fingerprint) --------------------------------------------------
def model_token(model) -> str:
    """Fingerprint of everything an edit can change (weights, intercepts, concepts) and the version."""
    return f"{head_token(model)}-v{getattr(model, 'version_', '')}"


def multilabel(model) -> bool:
    """Whether ``model`` is multi-label: several findings, each with its own probability (a sigmoid)."""
    return bool(getattr(model, "multilabel_", False))


def findings_text(names: list[str], row) -> str:
    """The findings marked in one 0/1 (or True/False) row, comma-separated; "no finding" when none."""
    hits = [n for n, v in zip(names, np.asarray(row).tolist(), strict=True) if v]
    return ", ".join(hits) if hits else "no finding"


def label_text(model, y_row) -> str:
    """A sample's true label as words: its class, or for a multi-label model its findings."""
    return findings_text(model.class_names_, y_row) if multilabel(model) else str(y_row)


@dataclass(frozen=True)
class Predictions:
    """Activations, class probabilities and predicted class names of one split.

    For a multi-label model ``proba`` holds each finding's own probability (rows need not sum to 1),
    ``present`` the findings called present (probability >= ``PRESENT_THRESHOLD``) and ``pred``
    those findings as text.
    """

    activations: np.ndarray  # (N, M)
    residual: np.ndarray | None  # (N, K) for hybrid models
    proba: np.ndarray  # (N, K)
    pred: np.ndarray  # (N,) class names (multi-label: the findings called present, as text)
    present: np.ndarray | None = None  # (N, K) bool, multi-label models only

    @property
    def confidence(self) -> np.ndarray:
        """Probability of the predicted class per sample (N,)."""
        return self.proba.max(1)


def predict_embeddings(model, X: np.ndarray) -> Predictions:
    """Activations, probabilities and predictions of ``model`` for embeddings ``X`` (N, d)."""
    A = model.transform(X)
    if multilabel(model):
        p = finding_probabilities(model, A)
        present = p >= PRESENT_THRESHOLD
        names = model.class_names_
        return Predictions(A, None, p, np.asarray([findings_text(names, r) for r in present]), present)
    res = model.residual_logits(X) if model.hybrid else None
    p = softmax(model.logits_from_activations(A, res))
    return Predictions(A, res, p, np.asarray(model.class_names_)[p.argmax(1)])


@st.cache_resource(show_spinner="Re-embedding the images with the model's source repair...", max_entries=16)
def _model_X(_model, token: str, path: str, split: str) -> np.ndarray:
    from cbm.models.source_repair import model_embeddings

    d = eval_data(Path(path))[split]
    if getattr(_model, "source_repair_", None) is None:
        return d.X
    return model_embeddings(_model, d.X, d.images, model_encoder(Path(path)),
                            what=f"the pooled embeddings of split {split!r} (data.npz has no images_{split})")


def model_X(model, path: Path, split: str) -> np.ndarray:
    """The embeddings ``model`` predicts ``split`` from: data.npz's, or its images re-embedded with the
    model's source repair when it has one (cached per model version)."""
    return _model_X(model, model_token(model), str(path), split)


@st.cache_resource(show_spinner="Scoring concepts...", max_entries=64)
def _predict(_model, token: str, path: str, split: str) -> Predictions:
    return predict_embeddings(_model, model_X(_model, Path(path), split))


def predictions(model, path: Path, split: str) -> Predictions:
    """Cached :class:`Predictions` of ``model`` on ``split`` (recomputed after any edit)."""
    return _predict(model, model_token(model), str(path), split)


@st.cache_resource(max_entries=16)
def _evalsets(_model, token: str, path: str) -> dict:
    out = {}
    for s, d in eval_data(Path(path)).items():
        p = predictions(_model, Path(path), s)
        out[s] = EvalSet(s, p.activations, encode_labels(_model, d.y), _model.concept_names_, p.residual,
                         None if d.domains is None else d.domains.astype(str), d.ids, model_X(_model, Path(path), s))
    return out


def evalsets(model, path: Path) -> dict:
    """Every split as a :class:`cbm.edits.preview.EvalSet` built from the cached activations (cached per head)."""
    return _evalsets(model, model_token(model), str(path))


@st.cache_resource(max_entries=16)
def _suggestions(_model, token: str, path: str):
    return suggest_edits(_model, evalsets(_model, Path(path)), top=8)


def suggestions(model, path: Path):
    """:func:`cbm.edits.preview.suggest_edits` for the current head (cached per head)."""
    return _suggestions(model, model_token(model), str(path))


@st.cache_resource(show_spinner="Measuring the edit and its baselines...", max_entries=16)
def _edit_preview(_model, token: str, path: str, edit_key: str, _edit):
    from cbm.edits.report import preview_with_baselines

    return preview_with_baselines(_model, _edit, evalsets(_model, Path(path)), path)


def edit_preview(model, path: Path, edit):
    """:func:`cbm.edits.report.preview_with_baselines` of ``edit`` on the current head (cached per head
    and edit: undo, or coming back to an edit, does not refit the baselines)."""
    key = json.dumps(edit.to_dict(), sort_keys=True, default=str)
    return _edit_preview(model, model_token(model), str(path), key, edit)


@st.cache_resource(show_spinner="Locating the concept in a few images...", max_entries=16)
def _located(_model, token: str, path: str, concept: str, n: int):
    from cbm.edits import NeutraliseAtSource
    from cbm.models.source_repair import repair_images

    data = eval_data(Path(path))
    split = "val" if "val" in data else next(iter(data))
    d = data[split]
    rep = NeutraliseAtSource(concept).repair(_model)
    first = d.images[: min(len(d.images), 64)]
    _, info = repair_images(_model, first, model_encoder(Path(path)), repair=rep)
    ids = d.ids if d.ids is not None else np.arange(len(d.images))
    return [(first[i], info["boxes"][i], info["size"], str(ids[i])) for i in np.flatnonzero(info["fired"])[:n]]


def located_regions(model, path: Path, concept: str, n: int = 6) -> list[tuple]:
    """Up to ``n`` images of the validation split (else the first split) where ``concept`` fires, each
    with the regions the model's own evidence locates it in: (image, boxes, input side, id)."""
    return _located(model, model_token(model), str(path), concept, n)


def accuracy_table(model, path: Path) -> dict[str, float]:
    """Accuracy per split (fraction correct), for the metric tiles; a multi-label model's mean AUROC
    over its findings instead (:func:`quality_name` says which)."""
    if multilabel(model):
        return {s: float(finding_table(model, path, s)["auroc"].mean()) for s, d in eval_data(path).items() if len(d)}
    return {s: accuracy(d.y, predictions(model, path, s).pred) for s, d in eval_data(path).items() if len(d)}


def quality_name(model) -> str:
    """What :func:`accuracy_table` measures, for tile labels: "Accuracy" or "Mean AUROC"."""
    return "Mean AUROC" if multilabel(model) else "Accuracy"


def finding_table(model, path: Path, split: str):
    """Per finding of a multi-label model on ``split``: positives, AUROC, average precision and
    sensitivity at 90% specificity (:func:`cbm.models.multilabel.finding_report` on cached predictions)."""
    return finding_report(eval_data(path)[split].y, predictions(model, path, split).proba, model.class_names_)


# -- explanations (thin wrappers over cbm.explain on cached activations) ------------------------
def explain_sample(model, preds: Predictions, i: int, k: int) -> tuple[np.ndarray, float | None]:
    """Per-concept contributions (M,) to class ``k``'s score for sample ``i``, and the residual part."""
    res = None if preds.residual is None else preds.residual[i]
    return explain.contributions(model, preds.activations[i], residual=res, target=k)


def counterfactual(model, preds: Predictions, i: int, off: list[str]) -> np.ndarray:
    """Class probabilities (K,) of sample ``i`` with the concepts ``off`` switched off."""
    res = None if preds.residual is None else preds.residual[i]
    return explain.counterfactual(model, preds.activations[i], off, residual=res)


# -- explanations shared by Explore and Upload: concept evidence, OOD ---------------------------
def reference_activations(model, path: Path) -> tuple[np.ndarray, str]:
    """Concept activations that percentiles are taken among: the training split, else the first one."""
    data = eval_data(path)
    split = "train" if "train" in data else ("val" if "val" in data else next(iter(data), None))
    if split is None:
        return np.zeros((0, len(model.concept_names_)), np.float32), ""
    return predictions(model, path, split).activations, split_label(split)


@st.cache_resource(show_spinner="Calibrating the out-of-distribution score...", max_entries=4)
def _ood(file: str, mtime: float):
    from cbm.ood import fit_ood, image_level

    return fit_ood({s: image_level(d.X) for s, d in eval_data(Path(file).parent).items()})


def ood_detector(path: Path):
    """An :class:`cbm.ood.OODDetector` fitted on the training embeddings of data.npz, or None."""
    file = Path(path) / "data.npz"
    if not file.is_file() or not {"train", "val", "test"} & set(eval_data(path)):
        return None
    return _ood(str(file), file.stat().st_mtime)


@st.cache_data(show_spinner="Hiding patches of the image to see where the concept fires...", max_entries=32)
def _occlusion(_model, token: str, spec: str, image_bytes: bytes, shape: tuple, concept: str) -> np.ndarray:
    image = np.frombuffer(image_bytes, np.uint8).reshape(shape)
    return explain.occlusion_map(_model, image, concept, _encoder(spec, _model))


def occlusion(model, path: Path, image: np.ndarray, concept: str) -> np.ndarray:
    """Cached occlusion map (H, W) of ``concept`` on ``image`` through the model's own encoder."""
    model_encoder(path)  # raises a clear error when the encoder is not recorded or cannot be built
    image = np.ascontiguousarray(np.asarray(image, np.uint8))
    return _occlusion(model, model_token(model), encoder_spec(path), image.tobytes(), image.shape, concept)
