"""CSV cells a spreadsheet never runs: formula-like text gets a leading quote that the project's
readers take off again; numbers stay numbers."""

import csv
import io

import pytest

from cbm._io import csv_writer, safe_csv_cell, safe_csv_frame, unescape_csv_cell


@pytest.mark.parametrize("text", ['=HYPERLINK("http://evil","x")', "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx",
                                  "-", "'=already quoted once"])
def test_formula_like_text_gets_a_leading_quote(text):
    assert safe_csv_cell(text) == "'" + text
    assert unescape_csv_cell(safe_csv_cell(text)) == text


@pytest.mark.parametrize("value", ["-0.5", "+3", "1e-5", "-.5", "12", "plain", "", "'quoted", -0.5, 3, None])
def test_numbers_and_ordinary_text_are_left_as_they_are(value):
    assert safe_csv_cell(value) == value
    if isinstance(value, str):
        assert unescape_csv_cell(value) == value


def test_the_writer_quotes_every_formula_cell_and_the_frame_helper_only_text_columns():
    import pandas as pd

    buf = io.StringIO()
    csv_writer(buf, lineterminator="\n").writerows([["=1+1", "-0.25", "@x"], ["ok", -1, "+1"]])
    assert list(csv.reader(io.StringIO(buf.getvalue()))) == [["'=1+1", "-0.25", "'@x"], ["ok", "-1", "+1"]]
    df = safe_csv_frame(pd.DataFrame({"=name": ["=A1", "b"], "score": [-0.5, 2.0]}))
    assert list(df.columns) == ["'=name", "score"]
    assert df["'=name"].tolist() == ["'=A1", "b"] and df["score"].tolist() == [-0.5, 2.0]
