"""The embedded default: Fashion-MNIST with a planted confounder, end to end (``cbm demo``)."""

from cbm.demo.confound import ConfoundConfig
from cbm.demo.garments import ARTIFACT, CLASSES, garment_concept_bank

__all__ = ["ARTIFACT", "CLASSES", "ConfoundConfig", "garment_concept_bank"]
