"""Distributed data parallel from torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE), nanoGPT style.

One process per device. The process group is only created when WORLD_SIZE > 1: gloo on CPU, nccl on CUDA.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from lipdub.settings import resolve_device


@dataclass(frozen=True)
class Dist:
    """This process's place in the run."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def master(self) -> bool:
        """Rank 0 logs, evaluates into files and writes checkpoints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto") -> Dist:
    """Resolve the device and, under torchrun with several processes, join the process group."""
    kind = resolve_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if kind == "cuda":
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device(kind)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if kind == "cuda" else "gloo")
        print(f"lipdub: rank {rank} of {world} on {dev} ({dist.get_backend()})", file=sys.stderr, flush=True)
    return Dist(rank, local, world, dev)


def teardown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, d: Dist) -> torch.nn.Module:
    """The model for the training forward pass: DDP-wrapped when several processes train together."""
    if not d.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[d.local_rank] if d.device.type == "cuda" else None)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def mean_over_ranks(values: dict[str, float], d: Dist) -> dict[str, float]:
    """Average scalars over all processes (identity for a single process)."""
    if not d.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return {k: float(v) / d.world_size for k, v in zip(keys, t.tolist(), strict=True)}


def max_over_ranks(value: float, d: Dist) -> float:
    """The largest `value` over all processes (identity for a single process)."""
    if not d.enabled:
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def mean_of_sums(sums: dict[str, float], counts: dict[str, int], d: Dist | None,
                 keys: list[str]) -> dict[str, float]:
    """sum / count for each of `keys` (the same list on every rank), sums and counts added over all processes."""
    sums = {k: sums.get(k, 0.0) for k in keys}
    counts = {k: counts.get(k, 0) for k in keys}
    if d is not None and d.enabled:
        t = torch.tensor([[float(sums[k]), float(counts[k])] for k in keys], dtype=torch.float64, device=d.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        sums = {k: float(t[i, 0]) for i, k in enumerate(keys)}
        counts = {k: int(t[i, 1]) for i, k in enumerate(keys)}
    return {k: sums[k] / max(counts[k], 1) for k in keys}


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()
