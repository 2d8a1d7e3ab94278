"""The one registry of concept sources: the library, ``cbm.concepts.SOURCES`` and the CLI list the same."""

import json

import numpy as np
import pytest

from cbm.bank import PROVENANCE_SOURCES
from cbm.concepts import SOURCES, generate_concepts, get_source, list_sources, load_concepts
from cbm.exceptions import DataError


def test_the_registry_names_every_source_once():
    assert list_sources() == ["llm", "textbook", "cav", "text", "labo", "file"]
    assert SOURCES == tuple(list_sources())
    assert all(get_source(name).summary for name in list_sources())


def test_the_cli_offers_exactly_the_registry_sources(capsys):
    from cbm.cli import main

    with pytest.raises(SystemExit):
        main(["concepts", "generate", "--source", "nowhere", "--out", "x"])
    offered = ", ".join(repr(s) for s in list_sources())
    assert f"invalid choice: 'nowhere' (choose from {offered})" in capsys.readouterr().err


def test_an_unknown_source_is_refused_with_the_closest_names():
    with pytest.raises(ValueError, match=r"Unknown concept source 'txt'\. Did you mean 'text'"):
        get_source("txt")


def test_a_source_refuses_a_request_without_what_it_needs():
    with pytest.raises(ValueError, match="The text concept source needs input, encoder"):
        generate_concepts("text")
    with pytest.raises(TypeError, match="unknown field"):
        generate_concepts("file", inputs="concepts.txt")


def test_the_file_source_is_load_concepts(tmp_path):
    path = tmp_path / "concepts.txt"
    path.write_text("striped fur\nlong tail\n")
    assert generate_concepts("file", input=path).names == load_concepts(path).names


def test_a_text_only_bank_is_embedded_when_an_encoder_is_given(tmp_path, text_encoder):
    path = tmp_path / "concepts.txt"
    path.write_text("striped fur\nlong tail\n")
    bank = generate_concepts("file", input=path, encoder=text_encoder, template="a photo of {}")
    np.testing.assert_allclose(bank.vectors[1], text_encoder.encode_text(["a photo of long tail"])[0])
    assert generate_concepts("file", input=path).vectors is None


def test_the_labo_source_keeps_the_class_prior(tmp_path, text_encoder):
    path = tmp_path / "classes.json"
    path.write_text(json.dumps({"cat": ["whiskers"], "dog": ["floppy ears", "whiskers"]}))
    bank = generate_concepts("labo", input=path, encoder=text_encoder)
    assert bank.classes == ["cat", "dog"] and bank.prior is not None
    assert bank.vectors.shape == (len(bank), text_encoder.dim)
    with pytest.raises(ValueError, match="names no classes"):
        (tmp_path / "plain.txt").write_text("whiskers\n")
        generate_concepts("labo", input=tmp_path / "plain.txt", encoder=text_encoder)


def test_the_cav_source_fits_one_vector_per_concept_from_an_npz(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "sets.npz", striped=rng.normal(1, 1, (30, 8)), negative=rng.normal(0, 1, (30, 8)))
    bank = generate_concepts("cav", input=tmp_path / "sets.npz", cav_method="mean_diff")
    assert bank.names == ["striped"] and bank.vectors.shape == (1, 8)
    np.savez(tmp_path / "no_negatives.npz", striped=rng.normal(size=(5, 8)))
    with pytest.raises(DataError, match="no_negatives.npz.*'negative' array"):
        generate_concepts("cav", input=tmp_path / "no_negatives.npz")


def test_every_bank_a_source_writes_carries_a_known_provenance(tmp_path, text_encoder):
    path = tmp_path / "concepts.txt"
    path.write_text("striped fur\n")
    for source in ("file", "text"):
        bank = generate_concepts(source, input=path, encoder=text_encoder)
        assert {p.source for p in bank.provenance} <= set(PROVENANCE_SOURCES)
