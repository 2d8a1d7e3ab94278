"""ConceptBank: names, texts, vectors, provenance and a class prior, saved without pickles."""

import json

import numpy as np
import pytest

from cbm.bank import ConceptBank, Provenance
from cbm.exceptions import CBMError, EncoderMismatchError


def _bank(**kw):
    rng = np.random.default_rng(0)
    return ConceptBank(["stripes", "spots", "Long Sleeves "], vectors=rng.normal(size=(3, 4)),
                       intercepts=[0.1, 0.2, 0.3], classes=["zebra", "leopard"],
                       prior=[[1, -1, 0], [-1, 1, 0]],
                       provenance=[Provenance("llm", {"classes": ["zebra"]}, model="m"),
                                   Provenance("cav", {"val_acc": 0.9}), Provenance("manual")],
                       encoder_fingerprint="enc-a", **kw)


def test_save_and_load_round_trip_exactly(tmp_path):
    bank = _bank(metadata={"source": "test"})
    bank.save(tmp_path / "b")
    back = ConceptBank.load(tmp_path / "b")
    assert back.names == bank.names and back.classes == bank.classes
    np.testing.assert_array_equal(back.vectors, bank.vectors)
    np.testing.assert_array_equal(back.prior, bank.prior)
    assert back.provenance[0].detail == {"classes": ["zebra"]} and back.metadata == {"source": "test"}
    assert not list((tmp_path / "b").glob("*.pkl"))
    json.loads((tmp_path / "b" / "bank.json").read_text())  # the text part is plain JSON


def test_subset_keeps_vectors_prior_and_provenance_aligned():
    sub = _bank().subset(["spots", 0])
    assert sub.names == ["spots", "stripes"]
    assert sub.prior.tolist() == [[-1, 1], [1, -1]]
    assert sub.provenance[0].source == "cav" and sub.intercepts.tolist() == pytest.approx([0.2, 0.1])


def test_unknown_name_suggests_the_closest():
    with pytest.raises(KeyError, match="Did you mean 'spots'"):
        _bank().index("spot")


def test_dedupe_ignores_case_spaces_and_end_dots():
    bank = ConceptBank(["a", "b", "c"], texts=["Long sleeves.", "long  sleeves", "collar"])
    assert bank.dedupe().names == ["a", "c"]


def test_merge_aligns_priors_over_the_union_of_classes():
    a = ConceptBank(["x"], classes=["k1"], prior=[[1]])
    b = ConceptBank(["y", "x"], classes=["k2"], prior=[[1, 1]])
    m = a.merge(b)
    assert m.names == ["x", "y"] and m.classes == ["k1", "k2"]
    assert m.prior.tolist() == [[1, 0], [0, 1]]  # "unknown" where a bank says nothing


def test_merge_refuses_vectors_from_another_encoder():
    other = ConceptBank(["z"], vectors=np.ones((1, 4)), encoder_fingerprint="enc-b")
    with pytest.raises(EncoderMismatchError, match="enc-b"):
        _bank().merge(other)


def test_rename_moves_texts_that_were_the_name():
    bank = ConceptBank(["a", "b"], texts=["a", "bee"]).rename({"a": "apple", "b": "bird"})
    assert bank.names == ["apple", "bird"] and bank.texts == ["apple", "bee"]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"names": ["a", "a"]}, "unique"),
    ({"names": ["a"], "texts": ["x", "y"]}, "1 names but 2 texts"),
    ({"names": ["a"], "vectors": np.ones(3)}, "2-D"),
    ({"names": ["a"], "prior": [[1]]}, "Pass classes"),
])
def test_inconsistent_parts_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConceptBank(**kwargs)


def test_provenance_source_is_checked_and_summarised():
    with pytest.raises(ValueError, match="llm"):
        Provenance("oracle")
    assert _bank().provenance[1].summary() == "CAV from example images, held-out accuracy 90%"
    assert "asked about zebra" in _bank().provenance[0].summary()


def test_loading_something_else_says_what_was_expected(tmp_path):
    with pytest.raises(CBMError, match="bank.json"):
        ConceptBank.load(tmp_path)
    (tmp_path / "bank.json").write_text("{not json")
    with pytest.raises(CBMError, match="not valid JSON"):
        ConceptBank.load(tmp_path)


def test_check_encoder_names_both_fingerprints():
    with pytest.raises(EncoderMismatchError, match="enc-a.*enc-z"):
        _bank().check_encoder("enc-z")
    _bank().check_encoder("enc-a")


# -- matching a bank's classes to the data's by name -----------------------------------------------
def test_match_classes_reorders_prior_rows_by_name():
    from cbm.bank import match_classes

    out = match_classes(_bank(), ["leopard", "zebra"])
    assert out.classes == ["leopard", "zebra"]
    np.testing.assert_array_equal(out.prior, [[-1, 1, 0], [1, -1, 0]])


def test_match_classes_refuses_other_names_listing_both_sides():
    from cbm.bank import match_classes
    from cbm.exceptions import ClassMismatchError

    with pytest.raises(ClassMismatchError, match=r"data classes \(2\): '0', '1'.*bank classes \(2\): 'zebra', "
                                                 r"'leopard'.*--class-map"):
        match_classes(_bank(), [0, 1])  # integer labels never match by position


def test_class_map_maps_data_classes_to_bank_classes(tmp_path):
    from cbm.bank import match_classes, parse_class_map

    out = match_classes(_bank(), ["0", "1"], "0=leopard,1=zebra")
    assert out.classes == ["0", "1"]
    np.testing.assert_array_equal(out.prior, [[-1, 1, 0], [1, -1, 0]])
    (tmp_path / "map.json").write_text(json.dumps({"chat à poil": "leopard"}))
    assert parse_class_map(tmp_path / "map.json") == {"chat à poil": "leopard"}
    with pytest.raises(ValueError, match="DATA_CLASS=BANK_CLASS"):
        parse_class_map("zebra")
    with pytest.raises(ValueError, match="not bank classes"):
        match_classes(_bank(), ["0"], "0=lion")


def test_replace_changes_only_the_given_fields_and_checks_them():
    bank = _bank()
    plain = bank.replace(prior=None, classes=None)
    assert plain.prior is None and plain.classes is None
    assert plain.names == bank.names and np.array_equal(plain.vectors, bank.vectors)
    assert bank.prior is not None  # the original is left as it was
    with pytest.raises(ValueError, match="3 names but 2 vectors"):
        bank.replace(vectors=np.zeros((2, 4)))
