"""Distributed training strategies: one class per backend, all with the same few steps.

:func:`twinengine.ai.trainer.train` calls a strategy wherever training differs between
one process and many: sharing what rank 0 computed (run id, checkpoint, evaluation),
wrapping the model, the loss of a global batch, backward, optimizer step, and the loss
logged per step. :class:`Strategy` is one process (each step the identity);
:class:`DdpStrategy` is ``torch.distributed`` DistributedDataParallel — gloo on the
CPU, NCCL when every local rank has a GPU — and :class:`DeepSpeedStrategy` DeepSpeed's
engine, both set up from torchrun's environment by :func:`start_strategy`. Each rank
takes its shard of every global batch and weights its loss so that the averaged
gradient is the global batch's, the same as in single-process training.
:func:`check_trainer` rejects a strategy that cannot run and a batch the ranks cannot
split, naming the key.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from twinengine.core.errors import ConfigError

T = TypeVar("T")
STRATEGIES = ("ddp", "deepspeed", "horovod")
EXTRAS = {"deepspeed": "deepspeed", "horovod": "horovod"}  # strategy → package it needs


class RankZeroFailed(Exception):
    """Rank 0 failed in a step the other ranks wait for; rank 0 reports the error."""


def check_trainer(config: dict[str, Any], world_size: int) -> None:
    """Reject a ``trainer.strategy`` that cannot run, a batch the ranks cannot split, and,
    with several processes, what trains in one only: a training script, or a model with
    its own ``train_step`` (the GAN's adversarial steps are not distributed)."""
    trainer = config["trainer"]
    name = trainer.get("strategy", "ddp")
    if name not in STRATEGIES:
        raise ConfigError(
            f"trainer.strategy: {name!r} is not a strategy; accepted: {', '.join(STRATEGIES)}"
        )
    if name in EXTRAS and importlib.util.find_spec(EXTRAS[name]) is None:
        raise ConfigError(
            f"trainer.strategy: {name!r} needs the {EXTRAS[name]} package, which is not "
            "installed (the extra is missing)",
            hint=f"pip install {EXTRAS[name]}, or use trainer.strategy=ddp",
        )
    if name == "horovod":
        raise ConfigError(
            "trainer.strategy: 'horovod' is installed but TwinEngine has no Horovod strategy "
            "yet; accepted: ddp, deepspeed"
        )
    size = trainer["batch_size"]
    if world_size > 1 and size % world_size:
        raise ConfigError(
            f"trainer.batch_size: {size} is not divisible by the {world_size} processes "
            "(it is the global batch, split evenly across them)",
            hint=f"use a multiple of {world_size}, e.g. trainer.batch_size="
            f"{max(world_size, size - size % world_size)}",
        )
    if world_size > 1 and "script" in config:
        raise ConfigError("--nproc: a training script distributes itself; run it alone")
    if world_size > 1:
        from twinengine.ai.config import factory_of
        from twinengine.ai.models import MODELS

        spec = config["model"]
        factory, _ = factory_of(spec, "model", MODELS)
        if hasattr(factory, "train_step"):
            key = "_target_" if "_target_" in spec else "name"
            raise ConfigError(
                f"model.{key}: {spec[key]!r} trains with one process (its own adversarial "
                "steps are not distributed); run it without --nproc"
            )


class NullTracker:
    """The tracker of every rank but 0: it knows the run, and records nothing."""

    def __init__(self, run_id: str, uri: str) -> None:
        self.run_id, self.uri = run_id, uri

    def _ignore(self, *args: Any, **kwargs: Any) -> None:
        """Rank 0 records the run."""

    set_tags = log_params = log_metrics = log_system = flush = log_artifact = end = _ignore


class Strategy:
    """Training in this one process: every distributed operation is the identity."""

    name = "local"

    def __init__(self) -> None:
        self.rank, self.local_rank, self.world_size = 0, 0, 1
        self.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, make: Callable[[], T]) -> T:
        """``make()`` computed on rank 0 and sent to every rank."""
        return make()

    def tracker(self, make: Callable[[], Any]) -> Any:
        """``make()`` (a :class:`RunTracker`) on rank 0; a :class:`NullTracker` elsewhere."""
        made = None

        def main() -> tuple[str, str]:
            nonlocal made
            made = make()
            return made.run_id, made.uri

        run_id, uri = self.share(main)
        return made if made is not None else NullTracker(run_id, uri)

    def wrap(self, model: torch.nn.Module, optimizer: Any) -> Any:
        """The module to train (the model itself, or its distributed wrapper)."""
        return model

    def batch_loss(
        self, model: Any, loss_fn: Any, x: torch.Tensor, y: torch.Tensor, batch: torch.Tensor
    ) -> torch.Tensor:
        """The loss to back-propagate for the global ``batch`` (indices into x and y)."""
        return loss_fn(model(x[batch]), y[batch])

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self, optimizer: Any) -> None:
        optimizer.step()

    def global_loss(self, loss: torch.Tensor) -> float:
        """The loss of the whole global batch, from :meth:`batch_loss`'s value."""
        return float(loss.item())

    def close(self) -> None:
        """Leave the process group (nothing to do in one process)."""


class DdpStrategy(Strategy):
    """``torch.distributed`` DistributedDataParallel, from torchrun's environment."""

    name = "ddp"

    def __init__(self, env: dict[str, str] | None = None) -> None:
        import torch.distributed as dist

        env = dict(os.environ if env is None else env)
        self.rank, self.world_size = int(env["RANK"]), int(env["WORLD_SIZE"])
        self.local_rank = int(env.get("LOCAL_RANK", "0"))
        local_size = int(env.get("LOCAL_WORLD_SIZE", str(self.world_size)))
        if torch.cuda.is_available() and torch.cuda.device_count() >= local_size:
            self.device, self.backend = torch.device("cuda", self.local_rank), "nccl"
            torch.cuda.set_device(self.device)
        else:
            self.device, self.backend = torch.device("cpu"), "gloo"
        self.dist = dist
        if not dist.is_initialized():
            self._init_process_group()

    def _init_process_group(self) -> None:
        self.dist.init_process_group(self.backend)

    def share(self, make: Callable[[], T]) -> T:
        box: list[Any] = [None, False]
        failure: BaseException | None = None
        if self.is_main:
            try:
                box[0] = make()
            except BaseException as exc:  # tell the other ranks, then raise it here
                failure, box[1] = exc, True
        self.dist.broadcast_object_list(box, src=0)
        if failure is not None:
            raise failure
        if box[1]:
            raise RankZeroFailed("rank 0 failed; it reports why")
        return box[0]

    def wrap(self, model: torch.nn.Module, optimizer: Any) -> Any:
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.local_rank] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def batch_loss(
        self, model: Any, loss_fn: Any, x: torch.Tensor, y: torch.Tensor, batch: torch.Tensor
    ) -> torch.Tensor:
        # Gradients are averaged over ranks, so each shard's loss is weighted to make
        # that average the gradient of the whole global batch (mean or sum reduction).
        # A rank with no sample left (a short last batch) runs one sample at weight 0.
        shard = torch.tensor_split(batch, self.world_size)[self.rank]
        if len(shard) == 0:
            shard, scale = batch[:1], 0.0
        elif getattr(loss_fn, "reduction", "mean") == "sum":
            scale = float(self.world_size)
        else:
            scale = self.world_size * len(shard) / len(batch)
        return loss_fn(model(x[shard]), y[shard]) * scale

    def global_loss(self, loss: torch.Tensor) -> float:
        total = loss.detach() / self.world_size
        self.dist.all_reduce(total)
        return float(total.item())

    def close(self) -> None:
        if self.dist.is_initialized():
            self.dist.barrier()  # leave together: rank 0 may still be saving the model
            self.dist.destroy_process_group()


class DeepSpeedStrategy(DdpStrategy):
    """DeepSpeed's engine (ZeRO stage 0, fp32) over the same rank layout as DDP."""

    name = "deepspeed"

    def __init__(self, env: dict[str, str] | None = None, *, batch_size: int = 1) -> None:
        self.batch_size = batch_size
        super().__init__(env)

    def _init_process_group(self) -> None:
        import deepspeed

        deepspeed.init_distributed(dist_backend=self.backend)

    def wrap(self, model: torch.nn.Module, optimizer: Any) -> Any:
        import deepspeed

        micro = max(1, self.batch_size // self.world_size)
        config = {
            "train_batch_size": micro * self.world_size,
            "train_micro_batch_size_per_gpu": micro,
            "gradient_accumulation_steps": 1,
            "zero_optimization": {"stage": 0},
            "gradient_clipping": 0.0,  # DeepSpeed clips at 1.0 unless told; DDP does not
        }
        self.engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
        return self.engine

    def backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss)

    def step(self, optimizer: Any) -> None:
        self.engine.step()


def start_strategy(trainer: dict[str, Any], env: dict[str, str] | None = None) -> Strategy:
    """This process's strategy: from torchrun's environment, else a single process."""
    env = dict(os.environ if env is None else env)
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return Strategy()
    if trainer.get("strategy", "ddp") == "deepspeed":
        return DeepSpeedStrategy(env, batch_size=int(trainer["batch_size"]))
    return DdpStrategy(env)
