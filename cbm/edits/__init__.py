"""Edits of a concept model's head: the edit kinds, their preview, repairs, history and reports.

- :mod:`cbm.edits.kinds`: the edit kinds (:class:`Prune`, :class:`SetWeight`, :class:`AddConcept`,
  :class:`RefitWithout`, ...), each with ``plan``, ``apply`` and an exact undo; re-exported here, so
  ``from cbm.edits import Prune`` works;
- :mod:`cbm.edits.source`: :class:`NeutraliseAtSource`, an artifact neutralised in the image before it is
  embedded (re-exported here);
- :mod:`cbm.edits.preview`: an edit's effect on cached activations (``preview``, ``EvalSet``);
- :mod:`cbm.edits.repair`: repair candidates and the baselines they are compared with;
- :mod:`cbm.edits.history`: versioned model directories, undo/redo and diffs (``EditSession``);
- :mod:`cbm.edits.report`: the edit report (one HTML page per edit).

Only :mod:`cbm.edits.kinds` (which holds :mod:`cbm.edits.source`'s kind too) is imported here; the other modules import this package, not the reverse.
"""

from cbm.edits.kinds import (
    EDIT_KINDS,
    AddConcept,
    ApplyPrior,
    Edit,
    EditRecord,
    EraseConcept,
    NeutraliseAtSource,
    Plan,
    Prune,
    PruneNormalize,
    RefitEdit,
    RefitRecord,
    RefitWithout,
    RemoveConcept,
    ScaleWeight,
    SetWeight,
    TrainingData,
    commit,
    create_edit,
)

__all__ = ["EDIT_KINDS", "create_edit", "AddConcept", "ApplyPrior", "Edit", "EditRecord", "EraseConcept",
           "NeutraliseAtSource", "Plan", "Prune", "PruneNormalize", "RefitEdit", "RefitRecord", "RefitWithout",
           "RemoveConcept", "ScaleWeight", "SetWeight", "TrainingData", "commit"]
