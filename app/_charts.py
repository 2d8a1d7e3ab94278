"""Plotly figure builders: plain data in, a ``Figure`` out (no Streamlit, no model).

Colours follow the Okabe-Ito palette, which stays distinguishable under the common forms of
colour blindness: blue pushes toward a class, orange pushes against it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

BLUE, ORANGE, SKY, GREEN, VERMILLION, GREY = "#0072B2", "#E69F00", "#56B4E9", "#009E73", "#D55E00", "#999999"
#: Diverging scale for signed weights: orange (against) - white - blue (toward).
DIVERGING = [[0.0, ORANGE], [0.5, "#F7F7F7"], [1.0, BLUE]]
_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), font=dict(size=13), template="plotly_white")


def weight_heatmap(coef: np.ndarray, classes: Sequence[str], concepts: Sequence[str],
                   provenance: Sequence[str] | None = None, title: str = "") -> go.Figure:
    """Class x concept weight heatmap; hover shows the weight and where the concept came from.

    Parameters
    ----------
    coef : ndarray of shape (K, M)
        Weights of the rows ``classes`` and columns ``concepts`` (already filtered and sorted).
    provenance : sequence of str, length M, optional
        One short line per concept ("LLM prompt", "textbook: Gray's Anatomy p. 12", ...).
    """
    coef = np.asarray(coef, float)
    lim = float(np.abs(coef).max()) if coef.size else 1.0
    prov = list(provenance) if provenance is not None else [""] * len(concepts)
    custom = np.tile(np.asarray(prov, dtype=object), (len(classes), 1))
    fig = go.Figure(go.Heatmap(
        z=coef, x=list(concepts), y=list(classes), customdata=custom,
        colorscale=DIVERGING, zmin=-lim or -1, zmax=lim or 1, zmid=0,
        colorbar=dict(title="weight"),
        hovertemplate="class %{y}<br>concept %{x}<br>weight %{z:.3f}<br>source: %{customdata}<extra></extra>",
    ))
    fig.update_layout(title=title, height=max(260, 34 * len(classes) + 160), **_LAYOUT)
    fig.update_xaxes(tickangle=-40, title="concept")
    fig.update_yaxes(title="class")
    return fig


def contribution_bars(names: Sequence[str], values: Sequence[float], title: str = "",
                      residual: float | None = None,
                      axis: str = "push toward (+) / against (-) the predicted class") -> go.Figure:
    """Horizontal bars of signed concept contributions, largest magnitude on top.

    ``residual`` (hybrid models) is drawn as a separate grey bar, since it is not a concept.
    """
    names, values = list(names), np.asarray(values, float)
    order = np.argsort(np.abs(values))
    labels = [names[i] for i in order]
    vals = values[order]
    colors = [BLUE if v >= 0 else ORANGE for v in vals]
    if residual is not None:
        labels = ["(non-concept residual)"] + labels
        vals = np.concatenate([[residual], vals])
        colors = [GREY] + colors
    fig = go.Figure(go.Bar(
        x=vals, y=labels, orientation="h", marker_color=colors,
        hovertemplate="%{y}: %{x:+.3f}<extra></extra>",
    ))
    fig.add_vline(x=0, line_color="#444", line_width=1)
    fig.update_layout(title=title, height=max(220, 26 * len(labels) + 90),
                      xaxis_title=axis, yaxis_title="concept", **_LAYOUT)
    return fig


def probability_bars(classes: Sequence[str], proba: Sequence[float], highlight: str | None = None) -> go.Figure:
    """Class probabilities, the highlighted class in blue."""
    proba = np.asarray(proba, float)
    order = np.argsort(proba)
    fig = go.Figure(go.Bar(
        x=proba[order], y=[classes[i] for i in order], orientation="h",
        marker_color=[BLUE if classes[i] == highlight else SKY for i in order],
        hovertemplate="%{y}: %{x:.1%}<extra></extra>",
    ))
    fig.update_layout(height=max(200, 22 * len(classes) + 80), xaxis=dict(range=[0, 1], tickformat=".0%"),
                      title="How sure the model is", xaxis_title="probability", **_LAYOUT)
    return fig


def finding_bars(findings: Sequence[str], proba: Sequence[float], threshold: float) -> go.Figure:
    """Each finding's own probability (multi-label), those called present in blue, the threshold as a line."""
    proba = np.asarray(proba, float)
    order = np.argsort(proba)
    fig = go.Figure(go.Bar(
        x=proba[order], y=[findings[i] for i in order], orientation="h",
        marker_color=[BLUE if proba[i] >= threshold else SKY for i in order],
        hovertemplate="%{y}: %{x:.1%}<extra></extra>",
    ))
    fig.add_vline(x=threshold, line_dash="dash", line_color=GREY)
    fig.update_layout(height=max(200, 22 * len(findings) + 80), xaxis=dict(range=[0, 1], tickformat=".0%"),
                      title="Probability of each finding", xaxis_title="probability (blue: called present)",
                      **_LAYOUT)
    return fig


def accuracy_bars(before: Mapping[str, float], after: Mapping[str, float] | None = None,
                  title: str = "Accuracy") -> go.Figure:
    """Accuracy per group (split or class), before and (optionally) after an edit."""
    groups = list(before)
    fig = go.Figure(go.Bar(name="now", x=groups, y=[before[g] for g in groups], marker_color=SKY,
                           hovertemplate="%{x}: %{y:.1%}<extra>now</extra>"))
    if after is not None:
        fig.add_bar(name="after the edit", x=groups, y=[after.get(g, np.nan) for g in groups],
                    marker_color=BLUE, hovertemplate="%{x}: %{y:.1%}<extra>after</extra>")
    fig.update_layout(title=title, barmode="group", yaxis=dict(range=[0, 1], tickformat=".0%"),
                      height=260, **_LAYOUT)
    return fig
