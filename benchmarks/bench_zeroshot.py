"""Zero-shot classification speed: ECGs scored from a store, and one record end to end.

Side by side in one process (interleaved repeats, medians), all cores:

- **store**: 2,048 ECGs of the synthetic store scored against the 6 rhythm classes, batch 256:
  ours (``ZeroShotClassifier.scores``: class embeddings built once from the cached prompt
  embeddings, the encoder, the fused ``normalized_similarity``) against the naive loop peer
  code writes (the class prompts run through the language model for every batch, eager
  normalise + matmul + softmax);
- **record**: one WFDB record end to end in a warm process (read, preprocess, encode, score):
  ours (``read_record`` + ``model.preprocess`` + the classifier) against the same model
  behind ``wfdb.rdrecord``, ``scipy.signal.resample_poly``, the scipy cleaning chain and the
  naive scoring.

    python benchmarks/bench_zeroshot.py [--quick] [--model RUN_DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import median_times, shared_data, table, write_results  # noqa: E402

CLASSES = ["sinus rhythm", "atrial fibrillation", "atrial flutter", "sinus tachycardia",
           "sinus bradycardia", "sinus arrhythmia"]


def setup(model_dir: str | None, cache: Path):
    import mets_fast
    from mets_fast.data import ECGStore
    from mets_fast.data.cache import prepared_store
    from mets_fast.data.spec import DataSpec
    from mets_fast.data.preprocess import store_settings
    from mets_fast.model import METSModel
    from mets_fast.text import FrozenTextEncoder

    store = ECGStore.open(prepared_store(DataSpec("synthetic", None), n=2048, cache_dir=cache,
                                         quiet=True))
    if model_dir:
        model = mets_fast.load(model_dir)
    else:  # an untrained model of the default architecture: the same work per ECG
        torch.manual_seed(0)
        lm = FrozenTextEncoder(cache_dir=cache / "text")
        model = METSModel(lm.dim, 128, store_settings(store), text=lm.text_space).eval()
        model.use_text_encoder(lm)
    return model, store


def naive_scores(model, lm, ecgs: np.ndarray) -> np.ndarray:
    """Peer code: prompts through the language model at every call, eager similarity."""
    from mets_fast.evaluation.zeroshot import TEMPLATES

    prompts = [TEMPLATES["rhythm"].format(c) for c in CLASSES]
    tokens = lm.tokenizer(prompts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = lm.model(**tokens).last_hidden_state
        mask = tokens["attention_mask"].unsqueeze(-1).float()
        text = (hidden * mask).sum(1) / mask.sum(1)
        classes = F.normalize(model.text_projection(text), dim=-1)
        x = torch.from_numpy(np.asarray(ecgs, dtype=np.float32))
        e = F.normalize(model.ecg_projection(model.encoder(x)), dim=-1)
        return torch.softmax(model.logit_scale * e @ classes.T, dim=1).numpy()


def naive_record(model, lm, path) -> np.ndarray:
    """Peer code for one record: wfdb + scipy resampling and filtering + naive scoring."""
    import scipy.signal
    import wfdb

    from mets_fast.data.records import select_leads, standard_lead
    from mets_fast.signal.reference import clean_scipy

    rec = wfdb.rdrecord(str(path))
    x = rec.p_signal.T
    s = model.settings
    x = scipy.signal.resample_poly(x, int(s.fs), int(rec.fs), axis=-1)
    x, _ = select_leads(x, [standard_lead(n) for n in rec.sig_name], s.leads)
    x = x[:, :s.samples]
    x = clean_scipy(x, s.fs, powerline=s.powerline)
    x = (x - x.mean(-1, keepdims=True)) / np.maximum(x.std(-1, keepdims=True), 1e-6)
    return naive_scores(model, lm, x[None])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer ECGs and repeats")
    parser.add_argument("--model", help="a run directory (default: an untrained model of the "
                                        "same shape, which costs the same)")
    args = parser.parse_args()
    from mets_fast.data.records import read_record
    from mets_fast.evaluation.zeroshot import ZeroShotClassifier

    cache = Path(os.environ.get("METS_FAST_CACHE") or tempfile.mkdtemp(prefix="bench_zs-"))
    model, store = setup(args.model, cache)
    lm = model.text_encoder()
    n = 512 if args.quick else 2048
    ecgs = store.signals[:n]
    classifier = ZeroShotClassifier(model, CLASSES, kind="rhythm")
    batches = [ecgs[i:i + 256] for i in range(0, n, 256)]
    repeats = 2 if args.quick else 5
    t = median_times({"ours": lambda: classifier.scores(ecgs, batch_size=256),
                      "naive": lambda: [naive_scores(model, lm, b) for b in batches]}, repeats)
    store_rows = [{"what": f"{n} ECGs from the store, batch 256", "impl": k,
                   "ecgs_per_s": n / v["wall_s"], **v} for k, v in t.items()]
    record = shared_data("ptbxl/records100/00000/00001_lr.hea")
    records = [record.with_suffix("")] if record else []
    extra = shared_data("ptbdb/s0010_re.hea")
    records += [extra.with_suffix("")] if extra else []
    record_rows = []
    for path in records:
        def ours(path=path):
            rec = read_record(path)
            return classifier.predict_proba(model.preprocess(rec.signal, rec.fs, rec.leads)[None])

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the PTB record's Frank leads
            t = median_times({"ours": ours, "naive": lambda path=path: naive_record(model, lm,
                                                                                     path)},
                             10 if args.quick else 40, warmup=3)
        for k, v in t.items():
            record_rows.append({"record": path.name, "impl": k, "median_ms": 1e3 * v["wall_s"],
                                **v})
    print()
    print(table(["scored", "impl", "ECGs/s", "wall s"],
                [[r["what"], r["impl"], r["ecgs_per_s"], r["wall_s"]] for r in store_rows]))
    speed = store_rows[0]["ecgs_per_s"] / store_rows[1]["ecgs_per_s"]
    print(f"\nstore: ours {speed:.2f}x the naive loop")
    if record_rows:
        print()
        print(table(["record end to end", "impl", "median ms"],
                    [[r["record"], r["impl"], r["median_ms"]] for r in record_rows]))
    path = write_results("bench_zeroshot", {"threads": torch.get_num_threads(),
                                            "store": store_rows, "record": record_rows,
                                            "store_speedup": speed}, args.quick)
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
