"""Every HTML page the project writes opens offline: no script, style or image from another host."""

from __future__ import annotations

import pytest
from html_pages import remote_fetches, write_all_pages

from cbm._io import write_figure_html


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    return write_all_pages(tmp_path_factory.mktemp("offline-pages"))


@pytest.mark.parametrize("kind", ["eval concepts", "eval interventions", "sample report", "edit report",
                                  "run summary"])
def test_page_fetches_nothing_from_outside(pages, kind):
    page = pages[kind].read_text(encoding="utf-8")
    assert remote_fetches(page) == []
    if "Plotly.newPlot" in page:  # a chart page carries plotly.js itself (about 4.6 MB)
        assert len(page) > 1_000_000


def test_the_check_finds_a_cdn_script_and_a_remote_image():
    page = ("<html><head><script src='https://cdn.plot.ly/plotly-2.min.js'></script>"
            "<link rel=stylesheet href=//fonts.example/x.css><style>b{background:url(http://x/y.png)}</style>"
            "</head><body><img src='data:image/png;base64,AA'><a href='https://example.org'>a link</a></body></html>")
    assert remote_fetches(page) == ["https://cdn.plot.ly/plotly-2.min.js", "//fonts.example/x.css", "http://x/y.png"]


def test_write_figure_html_inlines_plotly(tmp_path):
    import plotly.graph_objects as go

    out = tmp_path / "fig.html"
    write_figure_html(go.Figure(go.Bar(x=["a"], y=[1])), out)
    page = out.read_text(encoding="utf-8")
    assert remote_fetches(page) == [] and "Plotly.newPlot" in page and len(page) > 1_000_000
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, no leftover
