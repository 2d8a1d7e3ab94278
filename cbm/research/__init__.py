"""The research bench: measures of concept models beyond accuracy, and the experiment grids that run them.

- :mod:`cbm.research.evaluation`: concept AUCs, leakage, NEC/ANEC (``evaluate_concepts``);
- :mod:`cbm.research.annotations`: per-image concept labels (CUB, AwA2, arrays, the demo);
- :mod:`cbm.research.interventions`: intervention curves (fix concepts to their true values);
- :mod:`cbm.research.faithfulness`: each concept's AUC on held-out images, within class too;
- :mod:`cbm.research.experiment`: experiment grids from a TOML config (``cbm run``);
- :mod:`cbm.research._experiment_data`: the data loaders behind an experiment (private).

Nothing is imported here: import the module you need.
"""
