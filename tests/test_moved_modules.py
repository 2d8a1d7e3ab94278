"""Modules that moved into ``cbm.edits`` and ``cbm.research`` still import under their old names.

``cbm._MOVED`` maps each old name to its new home; the old name loads the very same module object
(no second copy, no shim file left in ``cbm/``) and warns with a DeprecationWarning naming the new one.
"""

import importlib
import subprocess
import sys

import pytest

import cbm

MOVED = sorted(cbm._MOVED.items())


@pytest.mark.parametrize(("old", "new"), MOVED)
def test_the_old_path_imports_the_new_module_and_warns(old, new):
    sys.modules.pop(old, None)  # an earlier test may have imported it already
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        mod = importlib.import_module(old)
    assert mod is importlib.import_module(new)
    assert sys.modules[old] is sys.modules[new]
    assert mod.__name__ == mod.__spec__.name == new


def test_the_moved_table_lists_the_edits_and_research_modules():
    assert {new.rsplit(".", 1)[0] for _, new in MOVED} == {"cbm.edits", "cbm.research"}
    assert dict(MOVED)["cbm.history"] == "cbm.edits.history"
    assert dict(MOVED)["cbm.edit_eval"] == "cbm.edits.preview"


def test_old_import_statements_work_and_point_at_the_caller():
    code = """
import warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import cbm.history
    from cbm.edit_eval import preview
    from cbm.repair import suggest_repairs
    from cbm import evaluation
    import cbm.edits.history, cbm.edits.preview, cbm.research.evaluation
    assert cbm.history is cbm.edits.history
    assert preview is cbm.edits.preview.preview
    assert evaluation is cbm.research.evaluation
    assert suggest_repairs.__module__ == "cbm.edits.repair"
print(sorted({str(w.message).split()[0] for w in caught if w.category is DeprecationWarning}))
print(sorted({w.filename for w in caught}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert lines[0] == str(sorted(["cbm.edit_eval", "cbm.evaluation", "cbm.history", "cbm.repair"]))
    assert lines[1] == "['<string>']"  # the warning names the line that imports the old path


def test_the_edit_kinds_are_the_public_names_of_cbm_edits():
    import cbm.edits
    import cbm.edits.kinds
    import cbm.edits.source

    assert set(cbm.edits.__all__) == set(cbm.edits.kinds.__all__) | {"NeutraliseAtSource"}
    assert cbm.edits.NeutraliseAtSource is cbm.edits.source.NeutraliseAtSource
    assert cbm.edits.NeutraliseAtSource.kind in cbm.edits.EDIT_KINDS
    for name in cbm.edits.kinds.__all__:
        assert getattr(cbm.edits, name) is getattr(cbm.edits.kinds, name)


def test_dir_of_cbm_lists_the_public_api_and_the_submodules():
    names = dir(cbm)
    assert set(cbm.__all__) <= set(names)
    assert {"edits", "research", "models", "explain", "data", "concepts"} <= set(names)
    assert not [n for n in names if n.startswith("_") and n != "__version__"]


def test_cbm_annotations_is_not_the_future_feature():
    """``cbm/__init__.py`` has no ``from __future__ import annotations``, which would bind
    ``cbm.annotations`` to the __future__ feature instead of the (moved) module."""
    code = ("import cbm; print('annotations' in vars(cbm)); import cbm.annotations, types; "
            "print(isinstance(cbm.annotations, types.ModuleType), cbm.annotations.__name__)")
    out = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c", code], capture_output=True,
                         text=True, check=True)
    assert out.stdout.split() == ["False", "True", "cbm.research.annotations"]
