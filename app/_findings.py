"""Multi-label models in the app: several findings per image, each with its own probability.

For one image, Explore and Upload show every finding's probability and which findings are called
present (probability at least :data:`cbm.models.multilabel.PRESENT_THRESHOLD`); for the finding
the user picks, the concept contributions to that finding's score, the numbers
:func:`cbm.explain.explain` gives with that finding as its target. Views that compare classes
which exclude each other ("why not") say in one sentence that they do not apply.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from cbm import explain
from cbm.app import _cache, _charts, _keys, _panels
from cbm.models.multilabel import PRESENT_THRESHOLD, finding_probabilities


def not_available(what: str) -> None:
    """One plain sentence: ``what`` does not work for multi-label models yet."""
    st.info(f"{what} is not available for multi-label models (several findings per image) yet.")


def finding_rows(model, preds: _cache.Predictions, i: int, truth=None) -> pd.DataFrame:
    """One row per finding of sample ``i``, most likely first: probability, called present, and the
    true label when ``truth`` (a 0/1 row) is known."""
    p = preds.proba[i]
    order = np.argsort(-p, kind="stable")
    df = pd.DataFrame({"finding": [model.class_names_[k] for k in order], "probability": p[order].astype(float),
                       "called present": ["yes" if p[k] >= PRESENT_THRESHOLD else "no" for k in order]})
    if truth is not None:
        df["truly present"] = ["yes" if truth[k] else "no" for k in order]
    return df


def pick_finding(model, preds: _cache.Predictions, i: int, key: str) -> str:
    """The finding to explain (a picker; default the most likely finding of the first sample shown)."""
    names = model.class_names_
    fkey = f"{key}_{_keys.FINDING}"
    if st.session_state.get(fkey) not in names:
        st.session_state[fkey] = names[int(np.argmax(preds.proba[i]))]
    return st.selectbox("Explain the finding", names, key=fkey,
                        help="Each finding has its own explanation; default: the most likely finding.")


def findings_panel(model, preds: _cache.Predictions, i: int, image, caption: str, *, key: str = "explore",
                   truth=None, path=None, raw_image=None) -> np.ndarray:
    """Image, each finding's probability and presence call, and the concept contributions to the
    finding picked; with ``path`` also one concept's evidence. Returns those contributions (M,)."""
    names = model.class_names_
    p = preds.proba[i]
    left, right = st.columns([1, 2])
    with left:
        if image is not None:
            st.image(image, caption=caption, width=240)
        called = _cache.findings_text(names, p >= PRESENT_THRESHOLD)
        st.markdown(f"### Findings called present: {called}" if called != "no finding"
                    else "### No finding called present")
        st.caption(f"Each finding has its own probability; it is called present at {PRESENT_THRESHOLD:.0%} or "
                   "more, so several findings (or none) can be present at once.")
        st.plotly_chart(_charts.finding_bars(names, p, PRESENT_THRESHOLD))
        st.dataframe(finding_rows(model, preds, i, truth), hide_index=True,
                     column_config={"probability": st.column_config.NumberColumn(format="percent")})
    with right:
        finding = pick_finding(model, preds, i, key)
        k = names.index(finding)
        e = explain.explain(model, activations=preds.activations[i:i + 1], target=finding)
        contrib = e.contributions[0]
        state = "called present" if p[k] >= PRESENT_THRESHOLD else "not called present"
        st.markdown(f"**{finding}: {p[k]:.0%}, {state}**"
                    + ("" if truth is None else f" (truly {'present' if truth[k] else 'absent'})"))
        top = np.argsort(-np.abs(contrib), kind="stable")[:10]
        st.plotly_chart(_charts.contribution_bars(
            [model.concept_names_[j] for j in top], contrib[top],
            title=f"Why {finding}: concepts raising (blue) and lowering (orange) its probability",
            axis=f"raises (+) / lowers (-) the score of {finding}"))
        st.caption(f"Each bar is the concept's score in this image times its weight for {finding}. The bars of "
                   f"all concepts plus the finding's baseline ({e.intercept[k]:+.2f}) add up to its score "
                   f"({e.logits[0, k]:+.2f}); the probability is the sigmoid of that score.")
        with st.expander(f"Every concept's contribution to {finding}"):
            st.dataframe(e.table(0), hide_index=True, key=f"{key}_{_keys.FINDING}_table")
    if path is not None:
        _panels.evidence(model, preds, i, key, path, raw_image, contrib)
    st.caption("“Why this class and not another” and the downloadable explanation compare classes that exclude "
               "each other; a multi-label model judges each finding on its own, so they are not shown here.")
    return contrib


def what_if(model, preds: _cache.Predictions, i: int) -> None:
    """Each finding's probability if the concepts the user picks were switched off."""
    off = st.multiselect("What if these concepts were switched off?", model.concept_names_,
                         key=_keys.EXPLORE_OFF, placeholder="pick concepts")
    if not off:
        return
    it = explain.intervene(model, preds.activations[i], {c: 0.0 for c in off})
    q = finding_probabilities(model, it.activations)[0]
    p = preds.proba[i]
    st.dataframe(pd.DataFrame({"finding": model.class_names_, "now": p.astype(float), "with them off": q.astype(float),
                               "called present after": ["yes" if v >= PRESENT_THRESHOLD else "no" for v in q]}),
                 hide_index=True, column_config={c: st.column_config.NumberColumn(format="percent")
                                                 for c in ("now", "with them off")})
