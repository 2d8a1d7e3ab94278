"""The README's pictures are of the current app: each was taken after the last change to the code that draws it.

``make screenshots`` retakes them (from the quick demo's model, in Chromium) and records, per picture,
the sha256 of its page file, the app's frame and the demo code (``docs/screenshots/screenshots.json``).
"""

import json
import re

import pytest
from browser_pages import DOCS, MANIFEST, README_SHOTS, ROOT, drawn_by

RETAKE = "run `make screenshots` to retake it"


def _pictures_in(page: str) -> set[str]:
    return set(re.findall(r"screenshots/([\w-]+)\.png", (ROOT / page).read_text()))


def test_every_picture_the_readme_and_the_app_page_show_is_a_recorded_screenshot():
    shown = _pictures_in("README.md") | _pictures_in("docs/app.md")
    assert shown <= set(README_SHOTS), f"pictures no browser test takes: {sorted(shown - set(README_SHOTS))}"
    missing = sorted(n for n in README_SHOTS if not (DOCS / f"{n}.png").is_file())
    assert missing == [], f"docs/screenshots/ lacks {missing}: {RETAKE}"


@pytest.mark.parametrize("name", sorted(README_SHOTS))
def test_a_picture_is_newer_than_the_code_that_draws_it(name):
    recorded = json.loads(MANIFEST.read_text()).get(name) if MANIFEST.is_file() else None
    assert recorded is not None, f"docs/screenshots/{name}.png has no record in {MANIFEST.name}: {RETAKE}"
    changed = sorted(f for f, digest in drawn_by(name).items() if recorded.get(f) != digest)
    assert changed == [], f"docs/screenshots/{name}.png predates the current {', '.join(changed)}: {RETAKE}"
