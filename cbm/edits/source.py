"""Repair at the source: neutralise an artifact concept in the image, where the model sees it.

:class:`NeutraliseAtSource` is an edit like the others (planned, previewed, applied, undone, saved
and versioned): it stores in the model (with its weights) the artifact concept's own predictor and
how to neutralise it. From then on, predictions from images (:func:`cbm.models.source_repair.embed_for_model`,
used by ``cbm predict``, ``cbm explain --image`` and the app's Upload page) locate the artifact
with the model's own evidence and fill it from the image's background before embedding; the head
and the concept predictors are unchanged. Predictions from pooled embeddings of such a model are
refused by those entry points: the embeddings still carry the artifact.

Previewing needs the images of each split::

    edit = NeutraliseAtSource("tag in the corner").using({"val": val_images, "shifted": images}, encoder)
    effect = preview(model, edit, evalsets)      # effect.timing: seconds per image before / after
"""

from __future__ import annotations

import copy
import hashlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from cbm.edits._base import Edit, EditRecord, Plan
from cbm.edits._refit_edits import TrainingData, concept_layer_token, refit_recorded
from cbm.exceptions import EditError
from cbm.explain import concept_index
from cbm.models.source_repair import DEFAULT_LAYER, METHODS, repair_images, source_repair


@dataclass
class SourceRecord(EditRecord):
    """A committed source repair; undo restores the model's previous source repair (usually none)."""

    def undo(self, model: Any) -> None:
        """Remove the source repair (restore the one before, if any)."""
        prev = self.before.get("source_repair_")
        if prev is None:
            model.__dict__.pop("source_repair_", None)
        else:
            model.source_repair_ = copy.deepcopy(prev)


@dataclass
class NeutraliseAtSource(Edit):
    """Neutralise ``concept`` (an artifact: a tag, a marker) in each image before it is embedded.

    Where the concept's predictor fires on an image's pooled embedding (above ``threshold``: 0.5
    for probability concepts, 0 otherwise), the artifact is located with the concept's own evidence
    at the encoder's feature map (``layer``; see :mod:`cbm.models.source_repair`): the fewest cells (at
    most ``max_cells``) predicted to switch the concept off. ``method="fill"`` fills their input
    region, plus ``margin`` of a cell, with the median of the image's border pixels and re-embeds
    the image; ``method="tokens"`` sets those feature cells to the background's and runs only the
    later stages. Nothing uses true artifact positions. With ``refit``, the head is also refitted on
    the training images with the artifact neutralised the same way (attach them as split "train"),
    so it no longer expects the artifact on the class it leaned on. ``tokens`` is the default: on the demo's
    default confounder (400 + 100 training images at 64 px) it gained 6.5 shifted points to fill's 3.5,
    at the same in-domain cost (1 point) and at about the speed of plain embedding; both are measured
    per configuration by ``benchmarks/bench_source_repair.py``.
    """

    concept: int | str
    method: str = "tokens"
    threshold: float | None = None
    margin: float = 0.25
    max_cells: int = 4
    layer: int = DEFAULT_LAYER
    refit: bool = False
    kind: ClassVar[str] = "neutralise-at-source"
    #: previewed on images (see :meth:`using`), not on cached activations
    source_level: ClassVar[bool] = True

    def plain(self) -> str:
        return (f"neutralise “{self.concept}” in each image before it is embedded"
                + (", then refit the head on the repaired training images" if self.refit else ""))

    def using(self, images: Mapping[str, Any], encoder: Any, data: TrainingData | None = None,
              cache_dir: str | Path | None = None) -> NeutraliseAtSource:
        """Attach the images of each split (by split name) and the model's encoder, for :func:`preview`;
        with ``refit``, also the training labels (``data``; default: the model directory's data.npz).
        ``cache_dir`` keeps the repaired embeddings on disk, keyed by their content (images, encoder,
        the model's concept layer and the repair), so a second run does not re-embed."""
        object.__setattr__(self, "_images", dict(images))
        object.__setattr__(self, "_encoder", encoder)
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_cache_dir", None if cache_dir is None else Path(cache_dir))
        object.__setattr__(self, "_embedded", {})
        return self

    def repair(self, model: Any) -> dict[str, Any]:
        """The repair record this edit stores in ``model`` (the concept's predictor and the settings)."""
        j = concept_index(model, self.concept)
        if self.method not in METHODS:
            raise EditError(f"Unknown source repair method {self.method!r}; use one of {list(METHODS)}.")
        if not 0.0 <= float(self.margin) <= 2.0:
            raise EditError(f"The margin is a share of a feature cell in [0, 2]; got {self.margin!r}.")
        if int(self.max_cells) < 1:
            raise EditError(f"max_cells must be at least 1; got {self.max_cells!r}.")
        vectors = getattr(model.concepts_, "vectors", None)
        if vectors is None or not getattr(model, "supports_vector_concepts", False):
            raise EditError(f"{type(model).__name__} cannot score its concepts on single images' features "
                            "(its concept layer is learned); a source repair needs KnoBo, LaBo or PCBM.")
        if source_repair(model) is not None:
            raise EditError("The model already has a source repair; undo it (or start from an earlier version) "
                            "before neutralising another concept.")
        probability = tuple(getattr(model, "activation_range", None) or ()) == (0.0, 1.0)
        threshold = (0.5 if probability else 0.0) if self.threshold is None else float(self.threshold)
        if probability and not 0.0 < threshold < 1.0:
            raise EditError(f"{self.concept!r} is a probability; its threshold must be in (0, 1); got {threshold!r}.")
        inter = model.concepts_.intercepts
        return {"concept": model.concept_names_[j], "vector": np.asarray(vectors[j], np.float32).copy(),
                "intercept": float(0.0 if inter is None else inter[j]), "threshold": threshold,
                "probability": probability, "method": self.method, "margin": float(self.margin),
                "max_cells": int(self.max_cells), "layer": int(self.layer)}

    def plan(self, model: Any) -> Plan:
        """Validate against ``model``; a source repair changes no weight (with ``refit``, the head's
        changes are known only after the refit)."""
        self.repair(model)
        if self.refit and not hasattr(model, "refit"):
            raise EditError(f"{type(model).__name__} cannot refit its head; neutralise-at-source with refit "
                            "needs a KnoBo model (or leave refit off).")
        return Plan(np.zeros(0, int), np.zeros(0, int), np.zeros((0, 0), np.float32))

    def apply(self, model: Any) -> EditRecord:
        """Store the repair in ``model`` (saved with its weights), after refitting the head on the
        repaired training images when ``refit``; the record's undo restores the model."""
        self.plan(model)
        rep = self.repair(model)
        if not self.refit:
            model.source_repair_ = rep
            return SourceRecord(self, [], {"source_repair_": None})
        X_train = self.embeddings(model, "train")
        data = self.data_for(model)
        if len(data.y) != len(X_train):
            raise EditError(f"The training labels have {len(data.y)} rows but {len(X_train)} training images were "
                            "attached.")
        X_val = self.embeddings(model, "val") if "val" in getattr(self, "_images", {}) and data.y_val is not None else data.X_val

        def refit() -> None:
            model.refit(X_train, data.y, X_val=X_val, y_val=data.y_val)
            model.source_repair_ = rep

        return refit_recorded(self, model, refit)

    def data_for(self, model: Any) -> TrainingData:
        """The training labels attached with :meth:`using`, else the model directory's data.npz."""
        data = getattr(self, "_data", None)
        return data if data is not None else TrainingData.for_model(model)

    def embeddings(self, model: Any, split: str) -> np.ndarray:
        """The attached images of ``split`` (see :meth:`using`) embedded with this repair (N, d)."""
        images, encoder = getattr(self, "_images", None), getattr(self, "_encoder", None)
        if encoder is None or images is None or split not in images:
            raise EditError(f"{self.kind} re-embeds the images of split {split!r}; attach them with "
                            "edit.using({split: images}, encoder).")
        rep = self.repair(model)
        key = (split, rep["vector"].tobytes(), *(v for k, v in sorted(rep.items()) if k != "vector"))
        cache = self.__dict__.setdefault("_embedded", {})
        if key not in cache:  # suggest_repairs, preview and compare_baselines all score the same images
            cache[key] = self._on_disk(model, rep, images[split], encoder)
        return cache[key]

    def _on_disk(self, model: Any, rep: dict[str, Any], images: Any, encoder: Any) -> np.ndarray:
        """Repaired embeddings of ``images``, read from / written to ``cache_dir`` when one was given."""
        folder = getattr(self, "_cache_dir", None)
        if folder is None:
            return repair_images(model, images, encoder, repair=rep)[0]
        h = hashlib.sha256(f"{getattr(encoder, 'fingerprint', type(encoder).__name__)}|{concept_layer_token(model)}|"
                           f"{sorted((k, v) for k, v in rep.items() if k != 'vector')}".encode())
        h.update(np.ascontiguousarray(rep["vector"]).tobytes())
        for im in images:
            h.update(np.ascontiguousarray(np.asarray(im)).tobytes())
        path = folder / f"{h.hexdigest()[:32]}.npy"
        if path.is_file():
            try:
                return np.load(path, allow_pickle=False)
            except (OSError, ValueError):  # a damaged cache file is recomputed, never trusted
                pass
        X = repair_images(model, images, encoder, repair=rep)[0]
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, X, allow_pickle=False)
        os.replace(tmp, path)
        return X

    def edited_logits(self, model: Any, sets: list[Any]) -> tuple[list[dict[str, Any]], list[tuple[np.ndarray,
                                                                                                    np.ndarray]]]:
        """Each split's logits before and after the repair, from its images (see :meth:`using`); sets
        ``timing_`` (seconds per image to embed, before and after)."""
        images, encoder = getattr(self, "_images", None), getattr(self, "_encoder", None)
        missing = [es.name for es in sets if images is None or es.name not in images]
        if encoder is None or missing:
            raise EditError(f"Previewing {self.kind} re-embeds the images of splits {missing or [es.name for es in sets]}"
                            "; attach them with edit.using({split: images}, encoder).")
        out = []
        edited = model
        if self.refit:
            edited = copy.deepcopy(model)
            self.apply(edited)
        for es in sets:
            if len(images[es.name]) != len(es):
                raise EditError(f"Split {es.name!r} has {len(es)} samples but {len(images[es.name])} images were "
                                "attached.")
            out.append((es.logits(model), edited.logits(self.embeddings(model, es.name))))
        object.__setattr__(self, "timing_", self.timing(model, images[sets[0].name]) if sets else {})
        return [], out

    def timing(self, model: Any, images: Any, n: int = 64) -> dict[str, float]:
        """Seconds per image to embed the first ``n`` of ``images`` without and with the repair."""
        encoder, sample = getattr(self, "_encoder", None), images[: max(1, n)]
        rep = self.repair(model)
        t0 = time.perf_counter()
        encoder.encode_images(sample)
        t1 = time.perf_counter()
        repair_images(model, sample, encoder, repair=rep)
        t2 = time.perf_counter()
        m = max(len(sample), 1)
        return {"seconds_per_image_before": (t1 - t0) / m, "seconds_per_image_after": (t2 - t1) / m,
                "extra_seconds_per_image": (t2 - 2 * t1 + t0) / m}


__all__ = ["NeutraliseAtSource", "SourceRecord"]
