"""A developer's own Dataset, used by tests/ai/test_custom.py (data._target_)."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class Line(Dataset):
    """y = slope * x + 1 on ``n`` points of [-1, 1]."""

    def __init__(self, n: int = 100, slope: float = 2.0) -> None:
        self.x = torch.linspace(-1, 1, n).reshape(-1, 1)
        self.y = slope * self.x + 1

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]


class Broken(Dataset):
    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int) -> int:
        raise RuntimeError("the sensor archive is offline")
