"""Versions page: every saved version with its note and the "why" of its edits; compare two; revert."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from cbm.app import _aliases, _args, _cache, _keys
from cbm.exceptions import CBMError
from cbm.io import list_versions, load_config, load_model, read_pointer
from cbm.metrics import accuracy
from cbm.models.multilabel import finding_report


def version_table(path, session) -> tuple[pd.DataFrame, dict[int, list[str]]]:
    """One row per saved version (number, current or not, when, note, how many edits), and per version
    the edits saved into it, each in words with its full why."""
    current = read_pointer(path)["current"]
    log = session.history()
    rows, changes = [], {}
    for v in list_versions(path):
        cfg = load_config(path, v)
        edits = log[(log["status"] == "saved") & (log["version"] == v)]
        changes[v] = [r.description + (f" — why: {r.why}" if r.why else "") for r in edits.itertuples()]
        rows.append({"version": v, "current": "yes" if v == current else "", "saved": cfg.get("created", ""),
                     "note": cfg.get("note", ""), "edits": len(edits)})
    return pd.DataFrame(rows), changes


@st.cache_data(show_spinner="Scoring the version...", max_entries=16)
def version_accuracy(path: str, version: int, mtime: float) -> dict[str, float]:
    """Accuracy of a saved version on every split of data.npz (multi-label: the findings' mean AUROC)."""
    model = load_model(path, version)
    out = {}
    for s, d in _cache.eval_data(path).items():
        p = _cache.predict_embeddings(model, d.X)
        out[_aliases.split_label(s)] = (float(finding_report(d.y, p.proba)["auroc"].mean())
                                        if _cache.multilabel(model) else accuracy(d.y, p.pred))
    return out


def compare(path, session, versions: list[int]) -> None:
    """Two version pickers, the weights that differ and the accuracy of each on every split."""
    st.subheader("Compare two versions")
    c1, c2 = st.columns(2)
    a = c1.selectbox("From version", versions, index=0, key=_keys.VERSION_A)
    b = c2.selectbox("To version", versions, index=len(versions) - 1, key=_keys.VERSION_B)
    if a == b:
        st.info("Pick two different versions to compare.")
        return
    diff = session.diff(a, b)
    if diff.empty:
        st.markdown(f"Versions {a} and {b} have the same weights.")
    else:
        st.markdown(f"**{len(diff.weights)} weight(s) differ** from version {a} to version {b}"
                    + (f"; concepts added: {', '.join(diff.added)}" if diff.added else "")
                    + (f"; concepts removed: {', '.join(diff.removed)}" if diff.removed else "") + ".")
        if len(diff.weights):
            st.dataframe(diff.weights.rename(columns={"old": f"weight in v{a}", "new": f"weight in v{b}",
                                                      "delta": "change"}), hide_index=True)
    data_file = path / "data.npz"
    if data_file.is_file():
        mt = data_file.stat().st_mtime
        acc_a, acc_b = version_accuracy(str(path), a, mt), version_accuracy(str(path), b, mt)
        multi = _cache.multilabel(_cache.current_model(path))
        what = "mean AUROC" if multi else "accuracy"
        scale, fmt = (1, "%.3f") if multi else (100, "%.1f%%")  # one precision for every row
        st.dataframe(pd.DataFrame({"split": list(acc_a), f"{what} v{a}": [scale * x for x in acc_a.values()],
                                   f"{what} v{b}": [None if acc_b.get(s) is None else scale * acc_b[s] for s in acc_a]}),
                     hide_index=True, column_config={f"{what} v{a}": st.column_config.NumberColumn(format=fmt),
                                                     f"{what} v{b}": st.column_config.NumberColumn(format=fmt)})


def revert(path, session, versions: list[int]) -> None:
    """Make an earlier version current again (saved as a new version, so nothing is lost)."""
    st.subheader("Make an earlier version current")
    current = read_pointer(path)["current"]
    older = [v for v in versions if v != current]
    if not older:
        st.caption("There is only one version.")
        return
    v = st.selectbox("Version", older, index=len(older) - 1, key=_keys.VERSION_REVERT)
    if st.button(f"Make version {v} current", key=f"{_keys.VERSION_REVERT}_go",
                 help="Saves a copy of it as the newest version; every version stays on disk."):
        try:
            new = session.revert_to(v)
        except CBMError as e:
            st.error(str(e))
            return
        st.session_state[_keys.VERSION_FLASH] = f"Version {v} is current again, saved as version {new}."
        st.rerun()


def render() -> None:
    """Draw the Versions page."""
    st.title("Versions")
    path = _args.require_model_dir()
    _cache.current_model(path)
    session = _cache.edit_session(str(path))
    flash = st.session_state.pop(_keys.VERSION_FLASH, None)
    if flash:
        st.success(flash)
    try:
        versions = list_versions(path)
        table, changes = version_table(path, session)
    except CBMError as e:
        st.error(f"**The versions of {str(path)!r} cannot be read.** {e}")
        st.stop()
    st.caption("Each save of the model is a version; edits are logged with the reason given for them.")
    st.dataframe(table, hide_index=True)
    for v, lines in changes.items():
        if lines:
            st.markdown(f"**Version {v}:** " + ("  \n".join(lines) if len(lines) == 1 else
                                                "\n" + "\n".join(f"- {line}" for line in lines)))
    if len(versions) > 1:
        compare(path, session, versions)
    revert(path, session, versions)


if __name__ == "__main__":
    render()
