"""Training throughput: data loading (samples/s per worker count) and expert / generator step time.

    python benchmarks/bench_train.py DATASET [--device auto] [--steps 5] [--batch-expert 64] [--batch-gen 16]

DATASET is a prepared dataset (`lipdub data prepare`). Prints samples/s of the loaders (does the GPU wait for
data?), seconds per training step and samples/s of each network, and the peak RSS of this process.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import cold_home  # benchmarks/common.py (scripts run from benchmarks/)
from torch.utils.data import DataLoader

from lipdub.data.windows import expert_inputs
from lipdub.engines.wav2lip.model import SyncNet, Wav2Lip, Wav2LipDiscQual
from lipdub.settings import resolve_device
from lipdub.train.dataset import ExpertDataset, LipSyncDataset, generator_inputs
from lipdub.train.expert import bce, sync_prob
from lipdub.train.generator import disc_loss, perceptual_loss, sync_loss
from lipdub.train.loop import Precision, _worker_init


def loader_rate(ds: torch.utils.data.Dataset, batch: int, workers: int, batches: int) -> float:
    """Samples per second a DataLoader delivers (after its first batch)."""
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                        worker_init_fn=_worker_init if workers else None, persistent_workers=False)
    it = iter(loader)
    next(it)
    start, n = time.perf_counter(), 0
    for _ in range(batches):
        try:
            next(it)
        except StopIteration:
            break
        n += batch
    return n / max(time.perf_counter() - start, 1e-9)


def timed(fn, steps: int, device: torch.device) -> float:
    """Median seconds per call of fn() over `steps` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def bench_steps(prec: Precision, channels_last: bool, exp_ds: ExpertDataset, gen_ds: LipSyncDataset,
                device: torch.device, args: argparse.Namespace) -> None:
    """Seconds per expert step and per generator + discriminator step (sync and perceptual losses on)."""
    tag = ("amp" if prec.enabled else "fp32") + (", channels_last" if channels_last else "")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    expert = SyncNet().to(device).to(memory_format=fmt)
    opt = torch.optim.Adam(expert.parameters(), 1e-4)
    scaler = prec.scaler()
    b = next(iter(DataLoader(exp_ds, batch_size=args.batch_expert, shuffle=True)))
    mel, faces, label = b["mel"].to(device), expert_inputs(b["frames"], device), b["label"].to(device)

    def expert_step() -> None:
        with prec.autocast():
            p = sync_prob(expert, mel, faces)
        opt.zero_grad()
        scaler.scale(bce(p, label)).backward()
        scaler.step(opt)
        scaler.update()

    s = timed(expert_step, args.steps, device)
    print(f"expert step ({tag}, batch {args.batch_expert}): {s:.3f} s, {args.batch_expert / s:.1f} samples/s")
    gen, disc = Wav2Lip().to(device).to(memory_format=fmt), Wav2LipDiscQual().to(device).to(memory_format=fmt)
    expert.eval().requires_grad_(False)
    gopt, dopt = torch.optim.Adam(gen.parameters(), 1e-4), torch.optim.Adam(disc.parameters(), 1e-4)
    gb = next(iter(DataLoader(gen_ds, batch_size=args.batch_gen, shuffle=True)))
    x, indiv, gmel, target = generator_inputs(gb, device, 48)

    def gen_step() -> None:
        disc.requires_grad_(False)
        with prec.autocast():
            g = gen(indiv, x)
            loss = 0.9 * F.l1_loss(g.float(), target) + 0.03 * sync_loss(expert, gmel, g, 48) \
                + 0.07 * perceptual_loss(disc, g)
        gopt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(gopt)
        scaler.update()
        disc.requires_grad_(True)
        with prec.autocast():
            real, fake = disc_loss(disc, target, g.detach())
        dopt.zero_grad()
        scaler.scale(real + fake).backward()
        scaler.step(dopt)
        scaler.update()

    s = timed(gen_step, args.steps, device)
    print(f"generator+GAN step ({tag}, batch {args.batch_gen} x 5 frames): {s:.3f} s, "
          f"{args.batch_gen / s:.2f} samples/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch-expert", type=int, default=64)
    ap.add_argument("--batch-gen", type=int, default=16)
    ap.add_argument("--workers", type=int, nargs="*", default=[0, 2, 4])
    args = ap.parse_args()
    cold_home()
    device = torch.device(resolve_device(args.device))
    gen_ds, exp_ds = LipSyncDataset(args.data, "train"), ExpertDataset(args.data, "train")
    print(f"device {device}, torch threads {torch.get_num_threads()}, train windows {len(gen_ds)}")
    for w in args.workers:
        print(f"loader, {w} workers: generator {loader_rate(gen_ds, args.batch_gen, w, 10):7.1f} samples/s, "
              f"expert {loader_rate(exp_ds, args.batch_expert, w, 4):7.1f} samples/s")
    for amp in ([False, True] if device.type == "cuda" else [False]):
        for channels_last in (False, True):
            bench_steps(Precision(device, amp), channels_last, exp_ds, gen_ds, device, args)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak RSS {peak:.2f} GiB" + (f", CUDA peak {torch.cuda.max_memory_allocated() / 1024**3:.2f} GiB"
                                       if device.type == "cuda" else ""))


if __name__ == "__main__":
    main()
