"""What every benchmark shares: the machine description, interleaved timing with medians,
peak-memory probes in a fresh process, the markdown table and the JSON file."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

RESULTS = Path(__file__).resolve().parent / "results"


def shared_data(item: str) -> Path | None:
    """`item` in the shared data folder (:func:`mets_fast.data.shared.shared_data`), or None."""
    from mets_fast.data.shared import shared_data as locate

    return locate(item, anchor=__file__)


def machine() -> dict:
    """CPU model, cores and the versions that decide the figures."""
    info = {"python": platform.python_version(), "platform": platform.platform(),
            "cores": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        info["cpu"] = platform.processor()
    for name in ("numpy", "torch", "numba", "scipy"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            pass
    try:
        import torch

        from mets_fast.loss import backends
        from mets_fast.precision import choose

        info["mets_fast_backends"] = backends()
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        info["bf16"] = choose("cpu", preset=True).reason
    except ImportError:
        pass
    # what stands in for an older CPU in this run (oneDNN's, ATen's and the package's)
    info["stand_ins"] = {k: os.environ[k] for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY",
                                                    "METS_FAST_CPU_ISA") if k in os.environ}
    return info


def median_times(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict:
    """Runs the callables interleaved (a, b, a, b, ... alternating the order) and returns, per
    name, the medians of process CPU time and of wall time in seconds."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    cpu = {k: [] for k in fns}
    wall = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names if r % 2 == 0 else reversed(names):
            w0, c0 = time.perf_counter(), time.process_time()
            fns[name]()
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - w0)
    return {k: {"cpu_s": statistics.median(cpu[k]), "wall_s": statistics.median(wall[k]),
                "repeats": repeats} for k in fns}


def peak_memory_probe(script: str, args: Sequence[str]) -> dict:
    """Runs `python script --probe args...` in a fresh process and returns the JSON it prints
    (the probe resets the peak with /proc/self/clear_refs and reports VmHWM growth)."""
    out = subprocess.run([sys.executable, script, "--probe", *args], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def reset_peak_rss() -> int:
    """Resets the peak resident set size of this process; returns the current RSS in bytes."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_kib("VmRSS") * 1024


def peak_rss() -> int:
    return _status_kib("VmHWM") * 1024


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not found in /proc/self/status")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def fmt(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(name: str, payload: dict, quick: bool) -> Path:
    """Full runs go to benchmarks/results/<name>.json; quick runs to a temporary file, so that a
    smoke run never overwrites the figures a closing note quotes."""
    payload = {"benchmark": name, "quick": quick, "machine": machine(), **payload}
    m = payload["machine"]
    stand_ins = " ".join(f"{k}={v}" for k, v in m["stand_ins"].items()) or "none"
    print(f"\nmachine: {m.get('cpu')}, {m['cores']} cores; torch runs "
          f"{m.get('torch_cpu_capability')}, the loss kernels "
          f"{m.get('mets_fast_backends', {}).get('cpu_isa')}; {m.get('bf16')}; stand-ins: "
          f"{stand_ins}")
    if quick:
        path = Path(tempfile.gettempdir()) / f"{name}.quick.json"
    else:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path
