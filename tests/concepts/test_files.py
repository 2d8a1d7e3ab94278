"""Import/export of concept lists: txt, CSV, JSON, LaBo class->concepts JSON, real lists."""

import json

import numpy as np
import pytest

from cbm.concepts import load_concepts, read_lines, save_concepts
from cbm.exceptions import DataError


def test_txt_strips_blanks_and_exact_repeats(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("red beak\n\n  red beak  \nRed beak\nlong neck \n")
    bank = load_concepts(p)
    assert bank.names == ["red beak", "Red beak", "long neck"]
    assert bank.provenance[0].source == "file" and bank.provenance[0].detail["path"] == str(p)


def test_labo_json_round_trip_keeps_prior(tmp_path):
    p = tmp_path / "labo.json"
    p.write_text(json.dumps({"cat": ["whiskers", "fur"], "dog": ["fur", "barks"]}))
    bank = load_concepts(p)
    assert bank.names == ["whiskers", "fur", "barks"]
    np.testing.assert_array_equal(bank.prior, [[1, 1, 0], [0, 1, 1]])
    out = save_concepts(bank, tmp_path / "out.json", "labo")
    assert json.loads(out.read_text()) == {"cat": ["whiskers", "fur"], "dog": ["fur", "barks"]}


@pytest.mark.parametrize("fmt", ["txt", "csv", "json"])
def test_export_then_import_keeps_concepts(tmp_path, fmt):
    p = tmp_path / "labo.json"
    p.write_text(json.dumps({"cat": ["whiskers"], "dog": ["barks"]}))
    bank = load_concepts(p)
    again = load_concepts(save_concepts(bank, tmp_path / f"x.{fmt}"))
    assert again.names == bank.names
    if fmt == "csv":
        np.testing.assert_array_equal(again.prior, bank.prior)


def test_csv_needs_a_concept_column(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("label,foo\n1,2\n")
    with pytest.raises(DataError, match="'concept' or 'name' column"):
        load_concepts(p)


def test_unknown_layouts_are_named(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"a": 1}))
    with pytest.raises(DataError, match="unknown layout"):
        load_concepts(p)
    with pytest.raises(DataError, match=r"\.txt, \.csv or \.json"):
        load_concepts(tmp_path / "c.yaml")


def test_real_sparsecbm_lists_load(shared_data):
    root = shared_data / "concept-sets/sparsecbm"
    raw = (root / "all_concepts.txt").read_text().splitlines()
    bank = load_concepts(root / "all_concepts.txt")
    assert len(bank) == len({s.strip() for s in raw if s.strip()})
    assert all(n == n.strip() and n for n in bank.names)
    assert len(read_lines(root / "cub_classes.txt")) == 200


def test_a_csv_export_neutralises_formula_like_names_and_reads_back_the_same_bank(tmp_path):
    p = tmp_path / "labo.json"
    p.write_text(json.dumps({'=HYPERLINK("http://evil","x")': ["@SUM(1+1)", "plain"], "dog": ["-2+3"]}))
    bank = load_concepts(p)
    out = save_concepts(bank, tmp_path / "x.csv")
    text = out.read_text()
    assert "'@SUM(1+1)" in text and "'-2+3" in text and "'=HYPERLINK(" in text
    again = load_concepts(out)
    assert again.names == ["@SUM(1+1)", "plain", "-2+3"]
    np.testing.assert_array_equal(again.prior, bank.prior)
