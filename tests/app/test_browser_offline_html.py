"""Every HTML page the project writes draws in Chromium with the network cut off."""

from __future__ import annotations

import pytest
from html_pages import write_all_pages

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    return write_all_pages(tmp_path_factory.mktemp("offline-browser"))


#: what shows that the page drew: a plotly chart's SVG, or an image that decoded
DRAWN = {
    "eval concepts": "document.querySelectorAll('.js-plotly-plot svg.main-svg .bars path, .js-plotly-plot svg.main-svg .point').length",
    "eval interventions": "document.querySelectorAll('.js-plotly-plot svg.main-svg .scatterlayer path.js-line').length",
    "run summary": "document.querySelectorAll('.js-plotly-plot svg.main-svg .bars path, .js-plotly-plot svg.main-svg .point').length",
    "sample report": "[...document.images].filter(i => i.complete && i.naturalWidth > 0).length",
    "edit report": "document.querySelectorAll('table').length",
}


@pytest.mark.parametrize("kind", list(DRAWN))
def test_page_draws_with_outside_requests_blocked(pages, browser, kind):
    page = browser.new_page()
    outside, failed, errors = [], [], []

    def route(r):
        if r.request.url.startswith(("file:", "data:", "blob:", "about:")):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("requestfailed", lambda req: failed.append(req.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(pages[kind].resolve().as_uri(), wait_until="load")
        page.wait_for_function(f"() => ({DRAWN[kind]}) > 0", timeout=20_000)
    finally:
        page.close()
    assert outside == [] and failed == [] and errors == []
