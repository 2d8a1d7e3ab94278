"""Per-image concept annotations: readers for CUB, AwA and long tables, and the shared type."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from cbm.exceptions import DataError
from cbm.research.annotations import (
    ConceptAnnotations,
    from_array,
    read_annotations,
    read_awa,
    read_cub,
    read_long,
)


def write_cub(tmp_path, extra_line: bool = True):
    """A 3-image, 4-attribute CUB-200-2011 in the release layout (attributes.txt next to the folder)."""
    base = tmp_path / "CUB_200_2011"
    (base / "attributes").mkdir(parents=True)
    (tmp_path / "attributes.txt").write_text(
        "1 has_bill_shape::curved_(up_or_down)\n2 has_bill_shape::dagger\n3 has_wing_color::blue\n"
        "4 has_wing_color::brown\n")
    (base / "images.txt").write_text(
        "1 001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg\n"
        "2 001.Black_footed_Albatross/Black_Footed_Albatross_0009_34.jpg\n"
        "3 002.Laysan_Albatross/Laysan_Albatross_0002_1027.jpg\n")
    lines = []
    for img in (1, 2, 3):
        for attr in (1, 2, 3, 4):
            present = int((img + attr) % 2 == 0)
            certainty = 4 if attr != 2 else 2
            lines.append(f"{img} {attr} {present} {certainty} {attr * 2.5:.3f}")
    if extra_line:  # the release has a few lines with one extra column
        lines[5] = "2 2 0 2 0 5.000"
    (base / "attributes" / "image_attribute_labels.txt").write_text("\n".join(lines) + "\n")
    return base


class TestReadCub:
    def test_reads_labels_certainty_and_cost(self, tmp_path):
        ann = read_cub(write_cub(tmp_path))
        assert ann.source == "cub"
        assert ann.concepts[0] == "has_bill_shape::curved_(up_or_down)"
        assert ann.ids[2] == "002.Laysan_Albatross/Laysan_Albatross_0002_1027.jpg"
        assert ann.values.shape == (3, 4)
        assert ann.values[0].tolist() == [1, 0, 1, 0]  # image 1: (1 + attr) even
        assert ann.certainty[:, 1].tolist() == [2, 2, 2]
        np.testing.assert_allclose(ann.cost, [2.5, 5.0, 7.5, 10.0])

    def test_malformed_line_with_extra_column_is_read_and_counted(self, tmp_path):
        ann = read_cub(write_cub(tmp_path))
        assert ann.metadata["malformed_lines"] == 1
        assert ann.values[1, 1] == 0 and ann.certainty[1, 1] == 2

    def test_min_certainty_masks_guesses(self, tmp_path):
        ann = read_cub(write_cub(tmp_path), min_certainty=3)
        assert np.isnan(ann.values[:, 1]).all()
        assert np.isfinite(ann.values[:, [0, 2, 3]]).all()

    def test_accepts_the_parent_folder_and_the_labels_file(self, tmp_path):
        base = write_cub(tmp_path)
        a = read_annotations(tmp_path)
        b = read_annotations(base / "attributes" / "image_attribute_labels.txt")
        np.testing.assert_array_equal(a.values, b.values)

    def test_missing_folder_says_what_is_expected(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="image_attribute_labels.txt"):
            read_cub(tmp_path)

    def test_bad_line_names_file_and_line(self, tmp_path):
        base = write_cub(tmp_path)
        path = base / "attributes" / "image_attribute_labels.txt"
        path.write_text(path.read_text() + "3 x 1 4 1.0\n")
        with pytest.raises(DataError, match="line 13"):
            read_cub(base)


def write_awa(tmp_path, with_images: bool = True):
    (tmp_path / "classes.txt").write_text("1\tantelope\n2\tgrizzly+bear\n")
    (tmp_path / "predicates.txt").write_text("1\tblack\n2\twhite\n3\tstripes\n")
    (tmp_path / "predicate-matrix-binary.txt").write_text("0 1 0\n1 0 0\n")
    (tmp_path / "predicate-matrix-continuous.txt").write_text("  -1.00  60.50  0.00\n 80.00 12.50  3.00\n")
    if with_images:
        for c, files in (("antelope", ["antelope_10001.jpg", "antelope_10002.jpg"]),
                         ("grizzly+bear", ["grizzly+bear_10001.jpg"])):
            (tmp_path / "JPEGImages" / c).mkdir(parents=True)
            for f in files:
                (tmp_path / "JPEGImages" / c / f).write_bytes(b"")
    return tmp_path


class TestReadAwa:
    def test_binary_matrix_expanded_per_image(self, tmp_path):
        ann = read_awa(write_awa(tmp_path))
        assert ann.concepts == ["black", "white", "stripes"]
        assert ann.ids.tolist() == ["antelope/antelope_10001.jpg", "antelope/antelope_10002.jpg",
                                    "grizzly+bear/grizzly+bear_10001.jpg"]
        assert ann.values.tolist() == [[0, 1, 0], [0, 1, 0], [1, 0, 0]]

    def test_continuous_scaled_and_negative_is_unknown(self, tmp_path):
        ann = read_awa(write_awa(tmp_path), continuous=True, images={"x.jpg": "grizzly+bear", "y.jpg": "antelope"})
        np.testing.assert_allclose(ann.values[0], [0.8, 0.125, 0.03], rtol=1e-6)
        assert np.isnan(ann.values[1, 0])
        assert not ann.is_binary

    def test_unknown_class_is_named(self, tmp_path):
        with pytest.raises(DataError, match="Unknown AwA class 'antelop'.*antelope"):
            read_awa(write_awa(tmp_path, with_images=False), images={"a.jpg": "antelop"})

    def test_shape_mismatch(self, tmp_path):
        write_awa(tmp_path)
        (tmp_path / "predicate-matrix-binary.txt").write_text("0 1\n1 0\n")
        with pytest.raises(DataError, match=r"shape \(2, 2\).*3 attributes"):
            read_awa(tmp_path)

    def test_dispatch_by_folder(self, tmp_path):
        assert read_annotations(write_awa(tmp_path)).source == "awa"


class TestReadLong:
    def test_csv_with_words_blanks_and_certainty(self, tmp_path):
        p = tmp_path / "labels.csv"
        p.write_text("image_id,concept,value,certainty\n001,red,1,4\n001,round,no,3\n002,red,0.25,\n"
                     "002,round,,1\n")
        ann = read_long(p)
        assert ann.ids.tolist() == ["001", "002"]  # ids stay text: leading zeros kept
        assert ann.concepts == ["red", "round"]
        assert ann.values[0].tolist() == [1.0, 0.0]
        assert ann.values[1, 0] == pytest.approx(0.25) and np.isnan(ann.values[1, 1])
        assert ann.certainty[0].tolist() == [4, 3]

    def test_parquet_round_trip(self, tmp_path):
        ann = from_array([[1, 0, -1], [0, 1, 1]], ["a", "b", "c"], ids=["x", "y"])
        back = read_annotations(ann.save(tmp_path / "labels.parquet"))
        np.testing.assert_array_equal(back.values, ann.values)
        assert back.ids.tolist() == ["x", "y"]

    def test_duplicate_pair_is_an_error(self, tmp_path):
        p = tmp_path / "labels.csv"
        p.write_text("image_id,concept,value\na,red,1\na,red,0\n")
        with pytest.raises(DataError, match="'a', concept 'red' more than once"):
            read_long(p)

    def test_missing_column_lists_found_columns(self, tmp_path):
        p = tmp_path / "labels.csv"
        p.write_text("img,concept,value\na,red,1\n")
        with pytest.raises(DataError, match=r"no column\(s\) \['image_id'\]; found \['img'"):
            read_long(p)

    def test_value_out_of_range(self, tmp_path):
        p = tmp_path / "labels.csv"
        p.write_text("image_id,concept,value\na,red,3\n")
        with pytest.raises(DataError, match="outside \\[0, 1\\]"):
            read_long(p)


class TestConceptAnnotations:
    def test_for_ids_reorders_and_fills_unknown_images(self):
        ann = from_array([[1, 0], [0, 1]], ["a", "b"], ids=["x", "y"])
        sub = ann.for_ids(["y", "z", "x"])
        assert sub.values[0].tolist() == [0, 1] and np.isnan(sub.values[1]).all()
        with pytest.raises(DataError, match="1 image id\\(s\\) have no concept annotations, e.g. 'z'"):
            ann.for_ids(["z"], missing="error")

    def test_align_matches_loosely_and_skips_unknown(self):
        ann = from_array(np.zeros((1, 3)), ["has_wing_color::blue", "Red Crown", "x"])
        model_cols, ann_cols = ann.align(["red crown", "nothing", "has wing color::blue"])
        assert model_cols.tolist() == [0, 2] and ann_cols.tolist() == [1, 0]

    def test_select_unknown_concept_suggests(self):
        ann = from_array(np.zeros((1, 2)), ["red crown", "blue wing"])
        with pytest.raises(DataError, match="Did you mean 'red crown'"):
            ann.select(["red crwn"])

    def test_duplicate_ids_rejected(self):
        with pytest.raises(DataError, match="image id 'a' more than once"):
            ConceptAnnotations(np.asarray(["a", "a"]), ["c"], np.zeros((2, 1)))

    def test_binary_keeps_unknown(self):
        ann = from_array([[0.7, -1]], ["a", "b"])
        out = ann.binary()
        assert out[0, 0] == 1 and np.isnan(out[0, 1])

    @pytest.mark.parametrize("suffix", [".csv", ".tsv"])
    def test_save_neutralises_formula_like_names_and_read_long_gets_them_back(self, tmp_path, suffix):
        names = ['=HYPERLINK("http://evil","x")', "-2+3", "plain"]
        ann = from_array([[1, 0, 0.5], [0, 1, -1]], names, ids=["@img1", "+img2"])
        path = ann.save(tmp_path / f"labels{suffix}")
        rows = list(csv.reader(path.open(newline=""), delimiter="\t" if suffix == ".tsv" else ","))
        assert rows[1][:2] == ["'@img1", "'" + names[0]] and ["'+img2", "'-2+3"] in [r[:2] for r in rows]
        again = read_long(path)
        assert list(again.ids) == ["@img1", "+img2"] and again.concepts == names
        np.testing.assert_array_equal(again.values, ann.values)


def test_demo_labels_go_through_the_same_type():
    from cbm.demo.garments import ARTIFACT, CLASSES, concept_labels, garment_concept_bank

    bank = garment_concept_bank()
    y = [CLASSES.index("Sneaker"), CLASSES.index("Shirt")]
    ann = from_array(concept_labels(bank, y, np.array([0, 1], np.int8)), bank.names, ["test/1", "test/2"], source="demo")
    assert ann.source == "demo" and ann.concepts == bank.names
    j = bank.index("laces")
    assert ann.values[0, j] == 1 and ann.values[1, j] == 0
    assert ann.values[:, bank.index(ARTIFACT)].tolist() == [0, 1]
    assert np.isnan(ann.values[1, bank.index("long sleeves")])  # "unknown" for Shirt


def test_the_old_demo_helper_names_its_new_home():
    import cbm.research.annotations as annotations

    with pytest.raises(AttributeError, match="from_array\\(cbm.demo.garments.concept_labels"):
        annotations.from_demo  # noqa: B018
