"""Self-contained HTML reports of one explanation: readable offline, images inline as base64 PNG.

:func:`explanation_html` writes what the app's explanation panel shows (prediction, the concepts
for and against it, "why not" another class, the evidence of one concept on the image and the
out-of-distribution score when known) as a single HTML string with no outside request.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np
from PIL import Image

from cbm._images import to_rgb
from cbm.exceptions import DataError
from cbm.explain import concept_percentile, contrast, contributions, softmax
from cbm.ood import describe_score, fit_ood, image_level

CSS = """body{font-family:system-ui,sans-serif;max-width:860px;margin:2em auto;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}table{border-collapse:collapse}
td,th{padding:2px 8px;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:inline-block;height:12px}.pos{background:#1f77b4}.neg{background:#ff7f0e}
.warn{background:#fff3cd;border:1px solid #e0c060;padding:.5em}.imgs img{margin-right:1em;image-rendering:pixelated}"""


def png_data_uri(image: Any, size: int | None = 240) -> str:
    """An image (PIL or uint8 array) as a ``data:image/png;base64,...`` URI, scaled to ``size`` px wide."""
    img = to_rgb(image)
    if size and img.width != size:
        img = img.resize((size, max(1, round(img.height * size / img.width))), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def heat_overlay(image: Any, heat: Any, alpha: float = 0.55) -> Image.Image:
    """``image`` with a red (fires) / blue (suppresses) overlay of an (H, W) map such as an occlusion map."""
    img = to_rgb(image)
    h = np.asarray(heat, np.float64)
    scale = float(np.abs(h).max()) or 1.0
    h = np.asarray(Image.fromarray((h / scale * 127 + 128).clip(0, 255).astype(np.uint8)).resize(img.size))
    v = (h.astype(np.float64) - 128) / 127
    base = np.asarray(img, np.float64)
    color = np.zeros_like(base)
    color[..., 0] = 255 * (v > 0)
    color[..., 2] = 255 * (v < 0)
    a = alpha * np.abs(v)[..., None]
    return Image.fromarray((base * (1 - a) + color * a).clip(0, 255).astype(np.uint8))


def _bars(rows: list[tuple[str, float]]) -> str:
    scale = max((abs(v) for _, v in rows), default=1.0) or 1.0
    out = []
    for name, v in rows:
        width = int(round(160 * abs(v) / scale))
        cls = "pos" if v >= 0 else "neg"
        out.append(f"<tr><td>{html.escape(name)}</td><td class='n'>{v:+.3f}</td>"
                   f"<td><span class='bar {cls}' style='width:{width}px'></span></td></tr>")
    return "<table><tr><th>concept</th><th>contribution</th><th></th></tr>" + "".join(out) + "</table>"


def explanation_html(model: Any, activations: Any, *, residual: Any = None, image: Any = None,
                     title: str = "Explanation", true: str | None = None, versus: str | None = None,
                     concept: str | None = None, percentile: float | None = None, occlusion: Any = None,
                     ood_score: float | None = None, ood_threshold: float | None = None, top: int = 8,
                     attention: Any = None, reference: Any = None) -> str:
    """One prediction explained as a self-contained HTML page (no scripts, no outside requests).

    ``activations`` (M,) and ``residual`` (K,) describe one sample; ``true`` its class when known;
    ``versus`` the class of the "why not" section (default: the true class if wrong, else the
    runner-up); ``concept`` with ``percentile`` and ``occlusion`` (an (H, W) map) its evidence;
    ``attention`` (an (h, w) map, token models such as ``cct``) where in the image ``concept`` is;
    ``reference`` (training activations, (N, M)) bounds the "why not" changes of unbounded models
    (:func:`cbm.explain.concept_bounds`).
    """
    a = np.asarray(activations, np.float32).ravel()
    r = None if residual is None else np.asarray(residual, np.float32).ravel()
    z = model.logits_from_activations(a[None], None if r is None else r[None])[0]
    p = softmax(z[None])[0]
    k = int(z.argmax())
    pred = model.class_names_[k]
    contrib, res = contributions(model, a, residual=r, target=k)
    order = np.argsort(-np.abs(contrib))[:top]
    c = contrast(model, a, k, versus, residual=r, true=true, reference=reference)
    e = html.escape
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{e(title)}</h1>"]
    if ood_score is not None and ood_threshold is not None and ood_score > ood_threshold:
        parts.append(f"<p class='warn'>This image is unlike the training images (out-of-distribution score "
                     f"{ood_score:.1f}, above the threshold {ood_threshold:.1f}); treat the prediction with care.</p>")
    imgs = []
    if image is not None:
        imgs.append(f"<img alt='the image' src='{png_data_uri(image)}'>")
        if occlusion is not None:
            imgs.append(f"<img alt='where {e(str(concept))} fires' "
                        f"src='{png_data_uri(heat_overlay(image, occlusion))}'>")
        if attention is not None:
            from cbm.concept_maps import overlay

            imgs.append(f"<img alt='where the model attends for {e(str(concept))}' "
                        f"src='{png_data_uri(overlay(image, attention))}'>")
    if imgs:
        parts.append("<div class='imgs'>" + "".join(imgs) + "</div>")
    verdict = "" if true is None else (" (correct)" if str(true) == pred else f" (wrong: the true class is "
                                                                             f"{e(str(true))})")
    parts.append(f"<h2>Prediction</h2><p>The model predicts <b>{e(pred)}</b>, {p[k]:.0%} sure{verdict}. "
                 f"Each concept's contribution is its score in this image times its weight for the class.</p>")
    parts.append(_bars([(model.concept_names_[j], float(contrib[j])) for j in order]))
    if res is not None:
        parts.append(f"<p>Part not explained by concepts (residual): {res:+.3f}.</p>")
    parts.append(f"<h2>Why {e(c.a)} and not {e(c.b)}</h2>")
    parts.append("".join(f"<p>{e(line)}</p>" for line in c.summary().splitlines()))
    parts.append(_bars([(row.concept, float(row.contribution)) for row in c.table.head(top).itertuples()]))
    if concept is not None:
        j = model.concept_names_.index(concept)
        where = "" if percentile is None else f", higher than {percentile:.0f}% of the reference images"
        parts.append(f"<h2>Evidence for “{e(concept)}”</h2><p>Its score in this image is {a[j]:.3f}{where}. "
                     + ("In the map, red marks regions whose hiding lowers the score (the concept fires there). "
                        if occlusion is not None else "")
                     + ("In the attention map, red marks the patches that attend to this concept (the "
                        "brightest is the most attended patch)." if attention is not None and image is not None
                        else "") + "</p>")
    if ood_score is not None:
        parts.append(f"<p>{e(describe_score(ood_score, ood_threshold))}</p>")
    parts.append(f"<p><small>Model: {e(str(getattr(model, 'method', type(model).__name__)))}, version "
                 f"{e(str(getattr(model, 'version_', '?')))}.</small></p></body></html>")
    return "".join(parts)


def sample_report(model: Any, splits: dict[str, dict[str, np.ndarray]], split: str, row: int, *,
                  versus: str | None = None, concept: str | None = None, occlusion: Any = None) -> str:
    """:func:`explanation_html` for row ``row`` of ``splits[split]`` (as read by ``load_eval_data``).

    Adds what the data allows: the image (``images``), the true class, the concept's percentile
    among training activations (``train`` split, else ``val``, else the split itself) and the
    out-of-distribution score (:func:`cbm.ood.fit_ood`; on patch tokens, of their mean), and for
    token models (``cct``) the concept's attention map over the image. ``concept`` defaults to the
    largest contributor.
    """
    d = splits[split]
    X = np.asarray(d["X"][row:row + 1], np.float32)
    A = model.transform(X)
    R = model.residual_logits(X) if getattr(model, "hybrid", False) else None
    a = A[0]
    if concept is None:
        k = int(model.logits_from_activations(A, R)[0].argmax())
        concept = model.concept_names_[int(np.argmax(np.abs(a * np.asarray(model.coef_)[k])))]
    j = model.concept_names_.index(concept)
    ref_split = next((splits[s] for s in ("train", "val") if s in splits), d)
    ref = model.transform(np.asarray(ref_split["X"], np.float32))
    score = threshold = None
    try:
        det = fit_ood({s: image_level(v["X"]) for s, v in splits.items()})
        score, threshold = float(det.score(image_level(X))[0]), det.threshold_
    except DataError:
        pass  # no embeddings of the training sites: the report says nothing about unusualness
    sid = str(d["ids"][row]) if "ids" in d else f"{split} row {row}"
    image = d["images"][row] if "images" in d else None
    attention = (model.concept_maps(X)[0, j] if image is not None and X.ndim == 3 and hasattr(model, "concept_maps")
                 else None)
    return explanation_html(model, a, residual=None if R is None else R[0], image=image,
                            title=f"Why the model predicts what it does for {sid}", true=str(d["y"][row]),
                            versus=versus, concept=concept, percentile=concept_percentile(ref[:, j], float(a[j])),
                            occlusion=occlusion, ood_score=score, ood_threshold=threshold, attention=attention,
                            reference=ref)


__all__ = ["explanation_html", "sample_report", "heat_overlay", "png_data_uri"]
