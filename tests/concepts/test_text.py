"""Text-derived concept vectors through an encoder's text tower."""

import numpy as np
import pytest

from cbm.concepts import embed_bank, text_concepts
from cbm.exceptions import EncoderMismatchError


def test_text_concepts_carry_vectors_fingerprint_and_provenance(text_encoder):
    bank = text_concepts(["striped fur", "long tail"], text_encoder, template="a photo of {}")
    assert bank.vectors.shape == (2, text_encoder.dim)
    np.testing.assert_allclose(bank.vectors[0], text_encoder.encode_text(["a photo of striped fur"])[0])
    assert bank.encoder_fingerprint == "fake-text/64"
    assert bank.provenance[0].source == "text"
    with pytest.raises(EncoderMismatchError):
        bank.check_encoder("other-encoder")


def test_embed_bank_needs_an_encode_text_method():
    from cbm.bank import ConceptBank

    with pytest.raises(TypeError, match="encode_text"):
        embed_bank(ConceptBank(["a"]), object())
