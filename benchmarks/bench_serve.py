"""``mets-fast serve`` under load, on loopback: ``/v1/retrieve`` (a 100,000-report index) and
``/v1/zeroshot`` queries of real-shaped records (12 leads, 500 Hz, 10 s, as ``.npy`` bodies) at
concurrency 1, 8, 32 and 128, beside (a) the same work through the library in one process,
batched, with the same threads, and (b) one ``python -m mets_fast.retrieve`` process per query.

    python benchmarks/bench_serve.py [--quick] [--model RUN] [--seconds 8] [--client httpx]

Without ``--model`` it trains the smoke preset (one short epoch with the default language
model) for a model of the default shape: the work per query does not depend on the weights.
The index holds 100,000 random unit vectors labelled as reports (a flat index costs the same
whatever the vectors).  The load generator (asyncio, with aiohttp's client or httpx's) runs in
this process and shares the machine's cores with the server: each level prints the share of a
core it took.  httpx's AsyncClient costs several times aiohttp's CPU per request under
concurrency (a known issue of httpx, its #3215), which on 2 cores is taken from the server.  Prints a markdown table and writes JSON and the table to
``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import shared_data, table, write_results  # noqa: E402

CLASSES = ["sinus rhythm", "atrial fibrillation", "sinus bradycardia", "sinus tachycardia"]
LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


def records(folder: Path, n: int = 8) -> list:
    """`n` WFDB records of 12 leads, 500 Hz, 10 s: PTB-XL's where the shared data have them,
    else written here from a synthetic ECG."""
    import wfdb

    root = shared_data("ptbxl-subset")
    found = sorted(root.glob("records500/*/*_hr.hea"))[:n] if root else []
    if found:
        return [p.with_suffix("") for p in found]
    out = []
    t = np.arange(5000) / 500.0
    for k in range(n):
        signal = np.stack([np.sin(2 * np.pi * (1 + 0.05 * k) * t) * (1 + 0.1 * j)
                           for j in range(12)])
        wfdb.wrsamp(f"r{k}", fs=500, units=["mV"] * 12, sig_name=list(LEADS),
                    p_signal=signal.T, fmt=["16"] * 12, adc_gain=[1000.0] * 12,
                    baseline=[0] * 12, write_dir=str(folder))
        out.append(folder / f"r{k}")
    return out


def npy(signal: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, signal.astype(np.float32))
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def load(url: str, bodies: list, concurrency: int, seconds: float, limit: int,
               client: str = "aiohttp") -> dict:
    """`concurrency` clients sending `bodies` in turn for `seconds` (at most `limit` requests
    in all): completed per second, p50 and p99 latency in ms, and the share of a core the
    load generator itself took (it runs on the server's cores)."""
    latencies, errors = [], 0
    stop = time.perf_counter() + seconds
    sent = 0
    headers = {"content-type": "application/octet-stream"}

    async def one(post, k: int) -> None:
        nonlocal sent, errors
        while time.perf_counter() < stop and sent < limit:
            sent += 1
            began = time.perf_counter()
            if await post(bodies[(k + sent) % len(bodies)]) != 200:
                errors += 1
            latencies.append(time.perf_counter() - began)

    async def run(post) -> tuple:
        began, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(post, k) for k in range(concurrency)))
        return time.perf_counter() - began, time.process_time() - cpu

    if client == "aiohttp":
        import aiohttp

        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=concurrency),
                timeout=aiohttp.ClientTimeout(total=120)) as session:
            async def post(body):
                async with session.post(url, data=body, headers=headers) as answer:
                    await answer.read()
                    return answer.status

            wall, cpu = await run(post)
    else:
        import httpx

        limits = httpx.Limits(max_connections=concurrency,
                              max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(timeout=120, limits=limits) as session:
            async def post(body):
                return (await session.post(url, content=body, headers=headers)).status_code

            wall, cpu = await run(post)
    ms = 1e3 * np.asarray(latencies)
    return {"requests": len(latencies), "errors": errors, "ecgs_per_s": len(latencies) / wall,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "client_cpu_share": cpu / wall}


def in_process(model, index, signals: list, threads: int, repeats: int) -> dict:
    """The library in this process, same threads, per endpoint: batched throughput (64 ECGs a
    call) of preprocess + encode + search (retrieve) or + zero-shot scoring (zeroshot) over the
    records, and one record's latency."""
    from mets_fast.evaluation.zeroshot import ZeroShotClassifier
    from mets_fast.threads import set_threads

    set_threads(threads)
    classifier = ZeroShotClassifier(model, CLASSES)
    batch = [signals[k % len(signals)] for k in range(64)]
    finish = {"retrieve": lambda emb: index.search(emb.numpy(), 5),
              "zeroshot": classifier.score_embeddings}
    out = {}
    for name, then in finish.items():
        def work(group):
            then(model.embed_ecgs(np.stack([model.preprocess(s, 500, LEADS) for s in group]),
                                  amp=False))

        work(batch[:4])
        times, single = [], []
        for _ in range(repeats):
            began = time.perf_counter()
            work(batch)
            times.append(time.perf_counter() - began)
        for k in range(repeats * 8):
            began = time.perf_counter()
            work([signals[k % len(signals)]])
            single.append(time.perf_counter() - began)
        out[name] = {"batched_ecgs_per_s": len(batch) / float(np.median(times)),
                     "single_p50_ms": 1e3 * float(np.median(single))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", help="a run directory (default: a smoke run made here)")
    parser.add_argument("--seconds", type=float, default=8.0, help="per concurrency level")
    parser.add_argument("--client", choices=("aiohttp", "httpx"), default="aiohttp",
                        help="the load generator's HTTP client (httpx's AsyncClient takes 6x "
                             "the CPU a request at concurrency 32, 20x at 128: on the server's "
                             "own cores that is taken from the server)")
    args = parser.parse_args()

    import mets_fast
    from mets_fast.data.records import read_record
    from mets_fast.retrieval import EmbeddingIndex, model_id

    work = Path(tempfile.mkdtemp(prefix="bench_serve-"))
    run = args.model
    if run is None:
        run = str(work / "run")
        subprocess.run([sys.executable, "-m", "mets_fast.train", "--preset", "smoke",
                        "--quiet", "--out", run], check=True)
    model = mets_fast.load(run)
    rng = np.random.default_rng(0)
    n = 20_000 if args.quick else 100_000
    vectors = rng.standard_normal((n, model.embed_dim)).astype(np.float32)
    index = EmbeddingIndex.build(vectors, [f"report {k}" for k in range(n)], kind="flat",
                                 model_id=model_id(model), items="reports")
    index.save(work / "index")
    paths = records(work)
    signals = [read_record(p).signal for p in paths]
    threads = os.cpu_count() or 1
    levels = (1, 8) if args.quick else (1, 8, 32, 128)
    seconds = 3.0 if args.quick else args.seconds

    print(f"in-process, {threads} threads ...", flush=True)
    library = in_process(model, index, signals, threads, 3 if args.quick else 7)

    print("one process per query ...", flush=True)
    per_process = []
    for k in range(2 if args.quick else 4):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mets_fast.retrieve", "--model", run, "--index",
                        str(work / "index"), str(paths[k % len(paths)]), "-k", "5", "--json"],
                       check=True, capture_output=True)
        per_process.append(time.perf_counter() - began)
    process_rate = 1 / float(np.mean(per_process))

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mets_fast.serve", "--model", run,
                               "--index", f"reports={work / 'index'}", "--port", str(port),
                               "--threads", str(threads), "--max-batch", "64"],
                              stderr=subprocess.DEVNULL)
    results = {}
    try:
        import httpx

        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the server did not start")
        bodies = [npy(s) for s in signals]
        query = "fs=500&leads=" + ",".join(LEADS)
        urls = {"retrieve": f"{base}/v1/retrieve?{query}&index=reports&k=5",
                "zeroshot": f"{base}/v1/zeroshot?{query}&classes=" + json.dumps(CLASSES)}
        for name, url in urls.items():
            asyncio.run(load(url, bodies, 2, 1.0, 8, args.client))  # warm: prompts, pages
            for c in levels:
                r = asyncio.run(load(url, bodies, c, seconds, 40 * c + 200, args.client))
                results[f"{name} c={c}"] = {"endpoint": name, "concurrency": c, **r}
                print(f"  {name} at concurrency {c}: {r['ecgs_per_s']:.1f} ECGs/s, p50 "
                      f"{r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms ({r['requests']} "
                      f"requests, {r['errors']} errors; the client took "
                      f"{r['client_cpu_share']:.0%} of a core)", flush=True)
    finally:
        server.terminate()
        server.wait(30)

    rows = [[k, round(r["ecgs_per_s"], 1), round(r["p50_ms"], 1), round(r["p99_ms"], 1),
             f"{r['ecgs_per_s'] / library[r['endpoint']]['batched_ecgs_per_s']:.2f}x",
             f"{r['ecgs_per_s'] / process_rate:.0f}x"] for k, r in results.items()]
    for name, lib in library.items():
        rows.append([f"{name}: library in-process, batched 64",
                     round(lib["batched_ecgs_per_s"], 1), "-", "-", "1.00x",
                     f"{lib['batched_ecgs_per_s'] / process_rate:.0f}x"])
        rows.append([f"{name}: library in-process, one record", round(
            1e3 / lib["single_p50_ms"], 1), round(lib["single_p50_ms"], 1), "-",
            f"{1e3 / lib['single_p50_ms'] / lib['batched_ecgs_per_s']:.2f}x", "-"])
    rows.append(["one retrieve process per query", round(process_rate, 2),
                 round(1e3 * float(np.mean(per_process)), 0), "-", "-", "1x"])
    markdown = table(["queries", "ECGs/s", "p50 ms", "p99 ms", "vs in-process batched",
                      "vs a process per query"], rows)
    print(f"\n## mets-fast serve on loopback ({threads} cores shared by server and client "
          f"({args.client}), {n:,}-report index)\n\n{markdown}\n")
    top = max((c for c in levels if c <= 32), default=levels[-1])
    summary = {}
    for name, lib in library.items():
        one, busy = results[f"{name} c=1"], results[f"{name} c={top}"]
        summary[name] = {
            f"c={top} vs in-process batched": busy["ecgs_per_s"] / lib["batched_ecgs_per_s"],
            f"c={top} vs c=1": busy["ecgs_per_s"] / one["ecgs_per_s"],
            "library batched vs one record (the most c=32 vs c=1 can be for a server "
            "matching the library)": lib["batched_ecgs_per_s"] * lib["single_p50_ms"] / 1e3,
            "c=1 p50 minus in-process single (ms)": one["p50_ms"] - lib["single_p50_ms"],
            f"c={top} vs a process per query": busy["ecgs_per_s"] / process_rate}
        print(f"- {name}: " + "; ".join(f"{k} {v:.2f}" for k, v in summary[name].items()))
    path = write_results("bench_serve", {"index": n, "threads": threads, "levels": levels,
                                         "client": args.client,
                                         "library": library, "per_process_s": per_process,
                                         "server": results, "summary": summary},
                         quick=args.quick)
    path.with_suffix(".md").write_text(markdown + "\n")
    print(f"results written to {path}")


if __name__ == "__main__":
    main()
