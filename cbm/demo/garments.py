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
}

SOURCE_NOTE = (
    "Written for the cbmkit demo as a garment-construction textbook would describe these parts; "
    "class answers follow the usual cut of each garment."
)


def garment_concept_bank(include_artifact: bool = True) -> ConceptBank:
    """The demo bank: 21 garment concepts with a yes/no/unknown class prior, plus the artifact."""
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


def concept_labels(bank: ConceptBank, y: np.ndarray, stamped: np.ndarray) -> np.ndarray:
    """Per-image concept labels (N, M): the class-level answer for garment concepts, the stamp itself
    for the artifact; -1 marks "unknown" (not used for grounding that concept)."""
    y = np.asarray(y, dtype=np.int64)
    labels = np.where(bank.prior[y] > 0, 1, np.where(bank.prior[y] < 0, 0, -1)).astype(np.int8)
    if ARTIFACT in bank.names:
        labels[:, bank.index(ARTIFACT)] = np.asarray(stamped, np.int8)
    return labels
