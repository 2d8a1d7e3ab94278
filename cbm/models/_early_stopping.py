"""Model selection on a validation split, shared by the gradient-trained heads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class EarlyStopping:
    """Keep the best state by validation accuracy, ties going to the lower validation loss.

    Ties matter: early in training many epochs share the same accuracy, and keeping the first
    one would freeze a barely trained head. ``update`` returns True once ``patience`` epochs
    in a row brought no improvement.
    """

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best_state: Any = None
        self.best_accuracy = -1.0
        self._best_key = (-1.0, float("-inf"))
        self._wait = 0

    def update(self, accuracy: float, loss: float, snapshot: Callable[[], Any]) -> bool:
        key = (float(accuracy), -float(loss))
        if key > self._best_key:
            self._best_key, self.best_accuracy, self._wait = key, float(accuracy), 0
            self.best_state = snapshot()
            return False
        self._wait += 1
        return self._wait >= self.patience
