"""Fused contrastive loss against the eager PyTorch reference (one matmul, two cross-entropies).

Forward + backward of the symmetric InfoNCE, float32, D = 256, run side by side in one
process, with a third column: the fused loss with report groups (``groups=``, one id per pair
drawn from B / 4 reports, so most rows have duplicates to leave out), against the fused loss
without them (target: within 10 % at B = 4096).  All three run (interleaved repeats, medians of process CPU time) on 1 thread (the targets) and on all
threads; the peak-memory growth of one step beyond the inputs and their preallocated gradients,
each measured in a fresh process; B = 65536 for the fused kernel alone (the eager reference would
need tens of GB); and, where a CUDA device is present, both on the GPU at B = 16384 in TF32 and
in bf16.

    python benchmarks/bench_loss.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    median_times,
    peak_memory_probe,
    peak_rss,
    reset_peak_rss,
    table,
    write_results,
)

from mets_fast.loss import backends, contrastive_loss, reference_contrastive_loss  # noqa: E402

DIM = 256
IMPLS = {
    "eager": lambda a, b, s, groups: reference_contrastive_loss(a, b, s),
    "fused": lambda a, b, s, groups: contrastive_loss(a, b, s),
    "grouped": lambda a, b, s, groups: contrastive_loss(a, b, s, groups=groups),
}


def make_inputs(batch: int, device="cpu", dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(batch, DIM, generator=g).to(device, dtype).requires_grad_()
    b = torch.randn(batch, DIM, generator=g).to(device, dtype).requires_grad_()
    s = torch.tensor(1 / 0.07, device=device, requires_grad=True)
    for t in (a, b, s):
        t.grad = torch.zeros_like(t)  # preallocated: backward accumulates in place
    groups = torch.randint(0, max(batch // 4, 1), (batch,), generator=g).to(device)
    return a, b, s, groups


def step(impl: str, a, b, s, groups):
    IMPLS[impl](a, b, s, groups).backward()


def probe(impl: str, batch: int, threads: int) -> None:
    """Peak memory growth of the first forward + backward at `batch` (run in a fresh process).
    A step at B = 8 first initialises the libraries; the measured step then pays for all the
    memory its batch size needs, the fused kernels' workspace (which they keep for the calls
    that follow) included."""
    torch.set_num_threads(threads)
    step(impl, *make_inputs(8))
    inputs = make_inputs(batch)
    base = reset_peak_rss()
    step(impl, *inputs)
    print(json.dumps({"impl": impl, "batch": batch, "peak_growth_bytes": peak_rss() - base}))


def cpu_speed(batches, repeats, threads):
    torch.set_num_threads(threads)
    rows = []
    for batch in batches:
        inputs = make_inputs(batch)
        t = median_times({k: (lambda k=k: step(k, *inputs)) for k in IMPLS}, repeats[batch])
        rows.append({"threads": threads, "batch": batch, **{k: t[k] for k in IMPLS},
                     "speedup_cpu": t["eager"]["cpu_s"] / t["fused"]["cpu_s"],
                     "speedup_wall": t["eager"]["wall_s"] / t["fused"]["wall_s"],
                     "groups_cost": t["grouped"]["cpu_s"] / t["fused"]["cpu_s"]})
        print(f"  threads={threads} B={batch}: eager {t['eager']['cpu_s'] * 1e3:.1f} ms, "
              f"fused {t['fused']['cpu_s'] * 1e3:.1f} ms, with groups "
              f"{t['grouped']['cpu_s'] * 1e3:.1f} ms (CPU time)", flush=True)
    return rows


def gpu_speed(batch: int, repeats: int):
    """Both implementations on the GPU in the same precision mode: TF32 (float32 inputs,
    allow_tf32 on for the eager matmul) and bf16 inputs for both."""
    rows = []
    for mode, dtype in (("tf32", torch.float32), ("bf16", torch.bfloat16)):
        torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
        inputs = make_inputs(batch, device="cuda", dtype=dtype)
        result = {"mode": mode, "batch": batch}
        for impl in IMPLS:
            step(impl, *inputs)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            times = []
            for _ in range(repeats):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                step(impl, *inputs)
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            times.sort()
            result[impl] = {"wall_s": times[len(times) // 2],
                            "peak_growth_bytes": torch.cuda.max_memory_allocated() - base}
        result["speedup"] = result["eager"]["wall_s"] / result["fused"]["wall_s"]
        result["groups_cost"] = result["grouped"]["wall_s"] / result["fused"]["wall_s"]
        rows.append(result)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--probe", nargs=3, metavar=("IMPL", "B", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(args.probe[0], int(args.probe[1]), int(args.probe[2]))
        return

    all_threads = os.cpu_count() or 1
    if args.quick:
        batches, repeats, memory_batch = [256, 1024], {256: 7, 1024: 3}, 1024
    else:
        batches = [256, 1024, 4096, 16384]
        repeats, memory_batch = {256: 21, 1024: 9, 4096: 5, 16384: 3}, 4096
    print(f"backends: {backends()}")
    speed = cpu_speed(batches, repeats, 1)
    if all_threads > 1:
        speed += cpu_speed(batches, repeats, all_threads)

    memory = {impl: peak_memory_probe(__file__, [impl, str(memory_batch), "1"])
              for impl in IMPLS}

    large = None
    if not args.quick:
        torch.set_num_threads(all_threads)
        inputs = make_inputs(65536)
        w0, c0 = time.perf_counter(), time.process_time()
        step("fused", *inputs)
        large = {"batch": 65536, "threads": all_threads, "wall_s": time.perf_counter() - w0,
                 "cpu_s": time.process_time() - c0}
        del inputs

    gpu = None
    if backends()["cuda_available"]:
        gpu = gpu_speed(2048 if args.quick else 16384, 5 if args.quick else 20)

    print("\n## CPU: forward + backward, float32, D = 256 (medians; CPU time = process time)\n")
    print(table(
        ["threads", "B", "eager CPU ms", "fused CPU ms", "speed-up (CPU)", "eager wall ms",
         "fused wall ms", "speed-up (wall)", "fused + groups CPU ms", "groups / plain"],
        [[r["threads"], r["batch"], r["eager"]["cpu_s"] * 1e3, r["fused"]["cpu_s"] * 1e3,
          r["speedup_cpu"], r["eager"]["wall_s"] * 1e3, r["fused"]["wall_s"] * 1e3,
          r["speedup_wall"], r["grouped"]["cpu_s"] * 1e3, r["groups_cost"]] for r in speed]))
    mib = {k: v["peak_growth_bytes"] / 2**20 for k, v in memory.items()}
    print(f"\n## Peak memory growth of one step at B = {memory_batch} (1 thread)\n")
    print(table(["implementation", "peak growth MiB"], [[k, v] for k, v in mib.items()]))
    if large:
        print(f"\nfused at B = 65536 on {large['threads']} threads: {large['wall_s']:.1f} s wall, "
              f"{large['cpu_s']:.1f} s CPU")
    if gpu:
        print(f"\n## GPU ({torch.cuda.get_device_name()}): forward + backward, D = 256\n")
        print(table(["mode", "B", "eager ms", "fused ms", "speed-up", "eager peak MiB",
                     "fused peak MiB", "fused + groups ms", "groups / plain"],
                    [[g["mode"], g["batch"], g["eager"]["wall_s"] * 1e3,
                      g["fused"]["wall_s"] * 1e3, g["speedup"],
                      g["eager"]["peak_growth_bytes"] / 2**20,
                      g["fused"]["peak_growth_bytes"] / 2**20, g["grouped"]["wall_s"] * 1e3,
                      g["groups_cost"]] for g in gpu]))

    def at(batch, key="speedup_cpu"):
        return next((r[key] for r in speed if r["threads"] == 1 and r["batch"] == batch), None)

    print("\n## Targets\n")
    for name, value, bound in (("fused >= 3x eager at B=4096, 1 thread", at(4096), 3.0),
                               ("fused >= 1.5x eager at B=256, 1 thread", at(256), 1.5)):
        if value is not None:
            print(f"- {name}: {value:.2f}x -> {'met' if value >= bound else 'NOT met'}")
    cost = at(4096, "groups_cost")
    if cost is not None:
        print(f"- groups within 10 % of plain at B=4096, 1 thread: {cost:.3f}x -> "
              f"{'met' if cost <= 1.10 else 'NOT met'}")
    if memory_batch == 4096:
        print(f"- peak growth <= 24 MiB at B=4096: {mib['fused']:.1f} MiB -> "
              f"{'met' if mib['fused'] <= 24 else 'NOT met'}")
    path = write_results("bench_loss", {"dim": DIM, "cpu": speed, "memory": memory,
                                        "memory_batch": memory_batch, "large": large, "gpu": gpu},
                         args.quick)
    print(f"\nresults written to {path}")


if __name__ == "__main__":
    main()
