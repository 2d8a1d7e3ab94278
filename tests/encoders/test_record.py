"""The encoder record: one frozen dataclass that every cache, bank and model reads and writes."""

import dataclasses
import json

import pytest

from cbm.encoders.record import EncoderRecord, model_encoder_record, recorded_fingerprint

MOBILENET_FP = "mobilenet_v2|weights=tag:IMAGENET1K_V2|size=96|resize=shortest-bilinear-centercrop|norm=imagenet"


def test_a_record_is_frozen_and_round_trips_through_its_saved_form():
    record = EncoderRecord(name="openclip:ViT-B-32", pretrained="laion2b", image_size=160,
                           fingerprint="openclip:ViT-B-32|weights=tag:laion2b", options={"precision": "fp32"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.image_size = 224
    saved = json.loads(json.dumps(record.to_dict()))
    assert EncoderRecord.read(saved) == record
    assert record.create_kwargs() == {"pretrained": "laion2b", "image_size": 160, "precision": "fp32"}


def test_a_bare_fingerprint_names_the_encoder_its_weights_tag_and_its_input_size():
    record = EncoderRecord.read(MOBILENET_FP)
    assert (record.name, record.pretrained, record.image_size, record.fingerprint) == (
        "mobilenet_v2", "IMAGENET1K_V2", 96, MOBILENET_FP)
    clip = EncoderRecord.read('openclip:ViT-B-32|weights=tag:openai|preprocess={"size": [224, 224]}')
    assert (clip.name, clip.pretrained, clip.image_size) == ("openclip:ViT-B-32", "openai", 224)


def test_nothing_recorded_reads_as_none():
    assert EncoderRecord.read(None) is None and EncoderRecord.read("") is None
    assert recorded_fingerprint(None) is None
    assert recorded_fingerprint({"name": "mobilenet_v2", "fingerprint": MOBILENET_FP}) == MOBILENET_FP


def test_a_token_record_knows_the_encoder_whose_tokens_it_holds():
    tokens = EncoderRecord.read({"name": "mobilenet_v2-tokens", "pretrained": None,
                                 "fingerprint": MOBILENET_FP + "|kind=tokens|grid=3x3"})
    assert tokens.is_tokens and not tokens.base().is_tokens
    assert tokens.base() == EncoderRecord(name="mobilenet_v2", image_size=96, fingerprint=MOBILENET_FP)


def test_a_local_checkpoint_without_its_path_needs_one():
    fp = "mobilenet_v2|weights=sha256:0123abcd|size=96"
    assert EncoderRecord.read(fp).needs_checkpoint
    assert not EncoderRecord.read({"name": "mobilenet_v2", "pretrained": "/w.pth", "fingerprint": fp}).needs_checkpoint


def test_an_encoder_saves_its_record_and_a_model_reads_it_back():
    from cbm.encoders import create_encoder

    encoder = create_encoder("mobilenet_v2", image_size=64)
    assert encoder.record == EncoderRecord(name="mobilenet_v2", image_size=64, fingerprint=encoder.fingerprint)
    assert encoder.spec == encoder.record.to_dict()
    assert encoder.tokens().record.base() == encoder.record

    class Fitted:
        fingerprints_ = {"encoder": encoder.spec}

    assert model_encoder_record(Fitted()) == encoder.record
    assert model_encoder_record(object()) is None
