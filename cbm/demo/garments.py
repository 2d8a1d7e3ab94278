"""The demo's concept bank: garment parts, shapes and materials for the ten Fashion-MNIST classes.

Written by the project as a garment textbook would put it, with a class-concept prior
(yes = +1 / no = -1 / unknown = 0) and provenance, plus one imaging-artifact concept, as real
concept sources list scanner and hospital markers.
"""

from __future__ import annotations

import numpy as np

from cbm.bank import ConceptBank, Provenance

CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]

ARTIFACT = "tag in the corner"

# concept -> (description, classes answered "yes", classes answered "unknown"); every other class is "no".
_GARMENT_CONCEPTS: dict[str, tuple[str, list[str], list[str]]] = {
    "sleeves": ("a garment with sleeves covering the arms",
                ["T-shirt/top", "Pullover", "Coat", "Shirt"], ["Dress"]),
    "long sleeves": ("sleeves that reach the wrist",
                     ["Pullover", "Coat"], ["Shirt", "Dress"]),
    "short sleeves": ("sleeves that end above the elbow",
                      ["T-shirt/top"], ["Shirt", "Dress"]),
    "collar": ("a folded band of fabric around the neckline",
               ["Shirt", "Coat"], ["Dress", "Pullover"]),
    "buttons": ("a row of buttons down the front",
                ["Shirt", "Coat"], []),
    "zipper": ("a zip fastener", [], ["Coat", "Bag", "Ankle boot", "Pullover"]),
    "hood": ("a hood attached at the neck", [], ["Coat", "Pullover"]),
    "two separate legs": ("two tubes of fabric, one per leg", ["Trouser"], []),
    "waistband": ("a band of fabric at the waist", ["Trouser"], ["Dress"]),
    "skirt below the waist": ("fabric that hangs loose below the waist", ["Dress"], ["Coat"]),
    "upper-body garment": ("worn on the torso",
                           ["T-shirt/top", "Pullover", "Coat", "Shirt", "Dress"], []),
    "knit texture": ("thick knitted fabric", ["Pullover"], ["Dress", "Coat"]),
    "straps": ("thin straps of material", ["Sandal"], ["Bag", "Dress"]),
    "open toe": ("the toes are left uncovered", ["Sandal"], []),
    "heel": ("a raised heel at the back of the shoe", ["Ankle boot"], ["Sandal"]),
    "laces": ("shoelaces across the top of the foot", ["Sneaker"], ["Ankle boot"]),
    "sole": ("a flat sole under the foot", ["Sandal", "Sneaker", "Ankle boot"], []),
    "footwear": ("something worn on the foot", ["Sandal", "Sneaker", "Ankle boot"], []),
    "ankle-high shaft": ("a shaft that covers the ankle", ["Ankle boot"], []),
    "handle": ("a handle or shoulder strap for carrying", ["Bag"], []),
    "rectangular body": ("a boxy rectangular body", ["Bag"], ["Coat"]),
    # -- construction details, as a garment-construction textbook lists them ----------------------
    "set-in sleeves": ("sleeves sewn into an armhole at the shoulder",
                       ["Shirt", "Coat"], ["T-shirt/top", "Pullover", "Dress"]),
    "raglan or drop shoulder": ("a sleeve seam running from the underarm to the neck, or a low shoulder",
                                ["Pullover"], ["T-shirt/top", "Coat", "Shirt"]),
    "cuffs": ("a finished band at the end of the sleeve", ["Shirt", "Coat", "Pullover"], []),
    "ribbed hem": ("a stretchy ribbed band at the hem or cuff", ["Pullover"], ["T-shirt/top", "Coat"]),
    "crew neckline": ("a round close-fitting neckline", ["T-shirt/top", "Pullover"], ["Dress"]),
    "v-neck or open neckline": ("a neckline cut low or open at the front", [], ["Dress", "T-shirt/top", "Shirt"]),
    "front placket": ("a strip along the front opening holding buttons", ["Shirt"], ["Coat"]),
    "lapels": ("fabric folded back on the chest below the collar", ["Coat"], []),
    "front opening": ("the garment opens all the way down the front", ["Shirt", "Coat"], []),
    "pockets": ("patch or welt pockets", ["Coat"], ["Trouser", "Shirt", "Bag", "Dress"]),
    "thick outerwear fabric": ("heavy fabric made to be worn over other clothes", ["Coat"], ["Pullover"]),
    "lightweight woven fabric": ("thin woven cloth such as cotton shirting",
                                 ["Shirt"], ["T-shirt/top", "Dress"]),
    "jersey knit": ("a fine stretchy knitted fabric", ["T-shirt/top"], ["Dress"]),
    "hip-length body": ("the body ends around the hips",
                        ["T-shirt/top", "Pullover", "Shirt"], ["Coat"]),
    "knee-length or longer": ("the garment reaches the knee or below", ["Dress", "Trouser"], ["Coat"]),
    "fitted waist": ("the garment narrows at the waist", ["Dress"], ["Coat", "Shirt"]),
    "sleeveless": ("no sleeves; bare arms", [], ["Dress", "T-shirt/top"]),
    "shoulder straps": ("thin straps over the shoulders instead of sleeves", [], ["Dress", "T-shirt/top"]),
    "flared skirt": ("a skirt widening towards the hem", ["Dress"], []),
    "belt loops": ("small loops at the waist for a belt", ["Trouser"], ["Coat", "Dress"]),
    "fly front": ("a covered opening at the front of the trousers", ["Trouser"], []),
    "creases down the legs": ("pressed lines running down each leg", ["Trouser"], []),
    "toe cap": ("a reinforced front part over the toes", ["Sneaker", "Ankle boot"], []),
    "thick rubber sole": ("a chunky rubber sole", ["Sneaker"], ["Ankle boot"]),
    "low-cut upper": ("an upper that stops below the ankle", ["Sneaker"], ["Sandal"]),
    "ankle strap": ("a strap around the ankle", [], ["Sandal"]),
    "open sides": ("gaps in the upper on the sides of the foot", ["Sandal"], []),
    "boot shaft with side zip or pull tab": ("a shaft with a zip or tab at the side or back",
                                             ["Ankle boot"], []),
    "elongated foot shape": ("a long narrow shape, toe to heel", ["Sandal", "Sneaker", "Ankle boot"], []),
    "clasp or flap closure": ("a flap, clasp or zip closing the top", ["Bag"], []),
    "carried, not worn": ("an accessory carried in the hand or on the shoulder", ["Bag"], []),
    "stitched seams visible": ("visible stitching along the seams",
                               ["Shirt", "Trouser", "Coat", "Bag"], ["T-shirt/top", "Dress", "Ankle boot"]),
    "symmetric left and right": ("the left and right halves mirror each other",
                                 ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Shirt"], ["Bag"]),
}

#: Concepts whose per-image labels are measured from the (unstamped) image itself, so they vary
#: within a class: name -> (description, measure). Labels: 1 above the training split's 70th
#: percentile, 0 below its 30th, unknown in between (see :func:`measured_labels`).
MEASURED = {
    "dark fabric": ("the garment's fabric is dark", "darkness"),
    "patterned or textured fabric": ("visible print, stripes or texture", "texture"),
    "wide silhouette": ("the garment is wide relative to its height", "width"),
    "arms held out from the body": ("material in the sleeve regions either side of the torso", "sleeve_region"),
    "tall silhouette": ("the item fills the image from top to bottom", "height"),
    "large area": ("the item covers much of the picture", "area"),
    "bright highlights": ("some very light patches on the item", "highlights"),
}

SOURCE_NOTE = (
    "Written for the cbmkit demo as a garment-construction textbook would describe these parts; "
    "class answers follow the usual cut of each garment."
)


def garment_concept_bank(include_artifact: bool = True, measured: bool = True) -> ConceptBank:
    """The demo bank: 54 garment concepts with a yes/no/unknown class prior, 7 measured from the
    image itself (prior "unknown": they vary within a class), plus the artifact."""
    names, texts, prov, rows = [], [], [], []
    for name, (desc, yes, unknown) in _GARMENT_CONCEPTS.items():
        for c in yes + unknown:
            if c not in CLASSES:
                raise ValueError(f"garment bank lists unknown class {c!r}")
        names.append(name)
        texts.append(desc)
        prov.append(Provenance("manual", {
            "note": SOURCE_NOTE,
            "answers": {c: "yes" if c in yes else "unknown" if c in unknown else "no" for c in CLASSES},
        }, model="cbmkit demo"))
        rows.append([1.0 if c in yes else 0.0 if c in unknown else -1.0 for c in CLASSES])
    for name, (desc, measure) in (MEASURED.items() if measured else ()):
        names.append(name)
        texts.append(desc)
        prov.append(Provenance("manual", {
            "note": f"Per-image label measured from the unstamped image ({measure}); varies within a class.",
            "measure": measure, "answers": {c: "unknown" for c in CLASSES},
        }, model="cbmkit demo"))
        rows.append([0.0] * len(CLASSES))
    if include_artifact:
        names.append(ARTIFACT)
        texts.append("a small bright square stamped in the image corner (an imaging artifact)")
        prov.append(Provenance("manual", {
            "note": "Imaging artifact, listed as concept sources list scanner marks; no class should need it.",
            "answers": {c: "unknown" for c in CLASSES},
        }, model="cbmkit demo"))
        rows.append([0.0] * len(CLASSES))
    prior = np.asarray(rows, np.float32).T  # (K, M)
    return ConceptBank(names, texts, provenance=prov, classes=CLASSES, prior=prior,
                       metadata={"source": "cbmkit demo garment bank"})


def measure_images(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image measurements (N,) of unstamped 28x28 uint8 images: darkness, texture, width,
    sleeve_region, height, area, highlights."""
    x = np.asarray(images, np.float32) / 255.0
    fg = x > 0.08
    n_fg = fg.sum((1, 2)).clip(min=1)
    lap = np.abs(4 * x[:, 1:-1, 1:-1] - x[:, :-2, 1:-1] - x[:, 2:, 1:-1] - x[:, 1:-1, :-2] - x[:, 1:-1, 2:])
    cols, rows = fg.any(1), fg.any(2)
    width = cols.sum(1).astype(np.float32)
    height = rows.sum(1).astype(np.float32)
    return {
        "darkness": 1.0 - (x * fg).sum((1, 2)) / n_fg,
        "texture": (lap * fg[:, 1:-1, 1:-1]).sum((1, 2)) / n_fg,
        "width": width / height.clip(min=1),
        "sleeve_region": (fg[:, 8:24, :6].sum((1, 2)) + fg[:, 8:24, 22:].sum((1, 2))) / n_fg,
        "height": height,
        "area": n_fg / x[0].size,
        "highlights": ((x > 0.85) & fg).sum((1, 2)) / n_fg,
    }


def measured_thresholds(images: np.ndarray, lo: float = 30, hi: float = 70) -> dict[str, tuple[float, float]]:
    """The (low, high) percentiles of each measurement on reference (training) images."""
    return {k: (float(np.percentile(v, lo)), float(np.percentile(v, hi)))
            for k, v in measure_images(images).items()}


def concept_labels(bank: ConceptBank, y: np.ndarray, stamped: np.ndarray, images: np.ndarray | None = None,
                   thresholds: dict[str, tuple[float, float]] | None = None) -> np.ndarray:
    """Per-image concept labels (N, M): the class-level answer for garment concepts, the measured
    value for measured concepts (needs the unstamped ``images`` and the training ``thresholds``),
    the stamp itself for the artifact; -1 marks "unknown" (not used for grounding that concept)."""
    y = np.asarray(y, dtype=np.int64)
    labels = np.where(bank.prior[y] > 0, 1, np.where(bank.prior[y] < 0, 0, -1)).astype(np.int8)
    measured = [n for n in bank.names if n in MEASURED]
    if measured and images is not None:
        values = measure_images(images)
        thresholds = thresholds or measured_thresholds(images)
        for n in measured:
            v, (lo, hi) = values[MEASURED[n][1]], thresholds[MEASURED[n][1]]
            labels[:, bank.index(n)] = np.where(v >= hi, 1, np.where(v <= lo, 0, -1))
    if ARTIFACT in bank.names:
        labels[:, bank.index(ARTIFACT)] = np.asarray(stamped, np.int8)
    return labels
