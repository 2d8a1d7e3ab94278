"""Image folders, manifests and array datasets: loading, conversion, fingerprints, bad input."""

import json

import numpy as np
import pytest
from PIL import Image

from cbm.data import ImageDataset, image_folder, load_digits_images, read_manifest
from cbm.data.folders import to_rgb
from cbm.exceptions import DataError


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "pets"
    for cls, color in (("cat", (200, 10, 10)), ("dog", (10, 10, 200))):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (12, 10), color).save(root / cls / f"{i}.png")
    Image.new("L", (5, 5), 128).save(root / "dog" / "gray.jpg")
    Image.new("RGBA", (6, 6), (0, 255, 0, 0)).save(root / "cat" / "clear.png")
    (root / "cat" / "notes.txt").write_text("not an image")
    return root


def test_image_folder_labels_by_subfolder(folder):
    with pytest.warns(UserWarning, match=r"1 non-image file.*notes\.txt"):
        ds = image_folder(folder)
    assert ds.classes == ["cat", "dog"] and len(ds) == 6
    assert [ds.classes[y] for y in ds.labels].count("dog") == 3
    assert "cat/0.png" in ds.ids and [p.name for p in ds.ignored] == ["notes.txt"]


def test_a_dicom_file_without_an_extension_is_read_by_its_marker(folder):
    from dicom_files import write_dicom

    pixels = np.arange(16 * 20, dtype=np.uint16).reshape(16, 20) * 50
    write_dicom(folder / "dog" / "IM0001", pixels)  # as scanners name them: no extension
    write_dicom(folder / "dog" / "1.2.840.113619.2.55", pixels)  # a UID name: its "suffix" is .55
    (folder / "dog" / "README").write_bytes(b"x" * 128 + b"DICX and more")  # no marker: not an image
    with pytest.warns(UserWarning, match=r"2 non-image file"):
        ds = image_folder(folder)
    assert {"dog/IM0001", "dog/1.2.840.113619.2.55"} <= set(ds.ids)
    assert sorted(p.name for p in ds.ignored) == ["README", "notes.txt"]
    img = ds[ds.ids.index("dog/IM0001")]
    assert img.size == (20, 16) and img.mode == "RGB"
    with pytest.warns(UserWarning, match=r"5 non-image file"):  # asked for PNG only: no sniffing
        assert len(image_folder(folder, extensions=(".png",))) == 5


def test_images_come_back_rgb_with_transparency_on_white(folder):
    with pytest.warns(UserWarning):
        ds = image_folder(folder)
    gray = ds[ds.ids.index("dog/gray.jpg")]
    clear = ds[ds.ids.index("cat/clear.png")]
    assert gray.mode == clear.mode == "RGB"
    assert clear.getpixel((0, 0)) == (255, 255, 255)


def test_fingerprint_is_stable_and_follows_file_changes(folder):
    with pytest.warns(UserWarning):
        a, b = image_folder(folder), image_folder(folder)
    assert a.fingerprint == b.fingerprint
    Image.new("RGB", (20, 20), (1, 2, 3)).save(folder / "cat" / "0.png")
    with pytest.warns(UserWarning):
        assert image_folder(folder).fingerprint != a.fingerprint


def test_missing_folder_and_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.*<class name>"):
        image_folder(tmp_path / "nope")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "a" / "readme.md").write_text("x")
    with pytest.raises(DataError, match=r"No images found in .*empty.*1 other file"):
        image_folder(tmp_path / "empty")


def test_flat_folder_is_unlabeled(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "x.png")
    ds = image_folder(tmp_path)
    assert ds.labels is None and ds.classes == [] and len(ds) == 1


def test_truncated_image_error_names_the_file(tmp_path):
    Image.new("RGB", (64, 64), (9, 9, 9)).save(tmp_path / "full.jpg")
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "full.jpg").read_bytes()[:200])
    ds = ImageDataset([tmp_path / "cut.jpg", tmp_path / "gone.png"])
    with pytest.raises(DataError, match=r"cut\.jpg.*truncated"):
        ds[0]
    with pytest.raises(DataError, match=r"gone\.png.*not found"):
        ds[1]


def test_csv_manifest_with_split_and_site(folder):
    rows = ["path,label,split,site", "cat/0.png,cat,train,A", "dog/1.png,dog,test,B", "dog/0.png,dog,train,A"]
    (folder / "m.csv").write_text("\n".join(rows) + "\n")
    ds = read_manifest(folder / "m.csv")
    assert ds.classes == ["cat", "dog"] and list(ds.labels) == [0, 1, 1]
    assert ds.splits == ["train", "test", "train"] and ds.domains == ["A", "B", "A"]
    assert ds[1].size == (12, 10)


def test_jsonl_manifest_and_numeric_labels(folder):
    lines = [{"path": str(folder / "cat" / "0.png"), "label": 10}, {"path": "dog/0.png", "label": 2}]
    (folder / "m.jsonl").write_text("\n".join(json.dumps(r) for r in lines))
    ds = read_manifest(folder / "m.jsonl")
    assert ds.classes == ["2", "10"] and list(ds.labels) == [1, 0]


def test_manifest_problems_name_the_file_and_line(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"path": "a.png"}\n{oops\n')
    with pytest.raises(DataError, match=r"bad\.jsonl.*line 2"):
        read_manifest(tmp_path / "bad.jsonl")
    (tmp_path / "nopath.csv").write_text("file,label\na.png,x\n")
    with pytest.raises(DataError, match=r"no 'path' column"):
        read_manifest(tmp_path / "nopath.csv")
    (tmp_path / "gap.csv").write_text("path,label\na.png,x\nb.png,\n")
    with pytest.raises(DataError, match=r"row 2 .*'b\.png'.* no label"):
        read_manifest(tmp_path / "gap.csv")


def test_arrays_digits_and_subset():
    ds = load_digits_images(30)
    assert len(ds) == 30 and ds.images.dtype == np.uint8 and ds.images.max() > 200
    assert ds[0].mode == "RGB" and ds[0].size == (8, 8)
    sub = ds.subset([3, 1])
    assert list(sub.labels) == [ds.labels[3], ds.labels[1]] and sub.fingerprint != ds.fingerprint


def test_to_rgb_rejects_float_arrays():
    with pytest.raises(DataError, match="uint8"):
        to_rgb(np.zeros((4, 4), np.float32))
