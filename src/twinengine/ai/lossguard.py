"""The loss-envelope guard of a training run.

:class:`LossGuard` decides, epoch by epoch, whether a run should stop: its validation
loss exceeds ``trainer.guard.max_loss``, turns NaN or infinite, or its average over the
last ``trainer.guard.window`` epochs has not improved for ``trainer.patience`` epochs.
Its state goes into a run's checkpoints, so a resumed run keeps watching the same
envelope. The built-in loop (:mod:`twinengine.ai.trainer`) and training scripts
(:mod:`twinengine.ai.script`) share it.
"""

from __future__ import annotations

import math
from typing import Any


class LossGuard:
    """Decides, epoch by epoch, whether the validation loss left its envelope."""

    def __init__(self, max_loss: float | None, window: int, patience: int | None) -> None:
        self.max_loss, self.window, self.patience = max_loss, max(int(window), 1), patience
        self.losses: list[float] = []
        self.best = math.inf
        self.stale = 0

    def check(self, loss: float) -> str | None:
        """The reason to stop after this epoch's ``loss``, or ``None`` to go on."""
        self.losses.append(loss)
        if not math.isfinite(loss):
            return f"validation loss is {loss}"
        if self.max_loss is not None and loss > self.max_loss:
            return f"validation loss {loss:.4g} exceeds trainer.guard.max_loss={self.max_loss}"
        average = sum(self.losses[-self.window :]) / len(self.losses[-self.window :])
        if average < self.best:
            self.best, self.stale = average, 0
        else:
            self.stale += 1
        if self.patience is not None and self.stale >= self.patience:
            return (
                f"the {self.window}-epoch average validation loss has not improved for "
                f"{self.stale} epochs (trainer.patience={self.patience})"
            )
        return None

    @classmethod
    def from_trainer(cls, trainer: dict[str, Any]) -> LossGuard:
        """The guard a config's checked ``trainer`` section asks for."""
        return cls(trainer["guard"]["max_loss"], trainer["guard"]["window"], trainer["patience"])

    def state(self) -> dict[str, Any]:
        return {"losses": self.losses, "best": self.best, "stale": self.stale}

    def load(self, state: dict[str, Any]) -> None:
        self.losses, self.best, self.stale = state["losses"], state["best"], state["stale"]
