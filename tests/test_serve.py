"""``mets-fast serve``: every endpoint and every form of ECG against the library and the CLIs,
dynamic batching, the API key and loopback rules, the body limit, a fuzz of malformed requests,
and the page in a real browser."""

import asyncio
import io
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import mets_fast
from mets_fast.data import STANDARD_LEADS
from mets_fast.evaluation.zeroshot import ZeroShotClassifier
from mets_fast.retrieval import EmbeddingIndex, model_id
from mets_fast.retrieval.embeddings import index_reports
from mets_fast.retrieve import main as retrieve_main
from mets_fast.serve import main as serve_main
from mets_fast.serving.app import create_app
from mets_fast.serving.service import Service
from mets_fast.zeroshot import main as zeroshot_main

fastapi_testclient = pytest.importorskip("fastapi.testclient")
REPORTS = ["sinus rhythm. normal ecg.", "atrial fibrillation.", "sinus bradycardia.",
           "sinus tachycardia. left ventricular hypertrophy.", "first degree av block.",
           "premature ventricular contractions.", "right bundle branch block."]
CLASSES = ["sinus rhythm", "atrial fibrillation", "sinus bradycardia"]


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory):
    """The trained model, a report index and an ECG index saved to disk, and a record."""
    folder = tmp_path_factory.mktemp("served")
    model = mets_fast.load(trained)
    index_reports(model, REPORTS).save(folder / "reports")
    rng = np.random.default_rng(0)
    ecgs = rng.standard_normal((12, model.embed_dim)).astype(np.float32)
    EmbeddingIndex.build(ecgs, [f"ecg-{k}" for k in range(12)], model_id=model_id(model),
                         items="ecgs").save(folder / "ecgs")
    return {"run": trained, "reports": folder / "reports", "ecgs": folder / "ecgs"}


@pytest.fixture(scope="module")
def record(tmp_path_factory, make_ecg, write_record):
    """A 12-lead WFDB record of 25 s at 500 Hz (three windows, the last partial) and its
    signal."""
    x, _ = make_ecg(500, seconds=25, seed=3)
    signal = np.stack([x * (1 + 0.1 * k) for k in range(12)])
    path = write_record(tmp_path_factory.mktemp("rec"), "rec", signal, 500, STANDARD_LEADS)
    return path, signal


@pytest.fixture(scope="module")
def service(served):
    return Service.load(served["run"], {"reports": served["reports"], "ecgs": served["ecgs"]},
                        max_batch=16)


@pytest.fixture(scope="module")
def client(service):
    with fastapi_testclient.TestClient(create_app(service, max_upload_mb=4)) as c:
        yield c


def as_json(signal, fs=500, leads=STANDARD_LEADS):
    return {"signal": np.asarray(signal).tolist(), "fs": fs, "leads": list(leads)}


def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def upload(path):
    path = Path(path)
    return [("files", (p.name, p.read_bytes())) for p in sorted(path.parent.glob(path.name + ".*"))]


# ----------------------------------------------------------------------- the endpoints

def test_health_and_info(client, service):
    assert client.get("/health").json() == {"status": "ok", "model": service.id}
    info = client.get("/v1/info").json()
    assert info["model"] == service.id
    assert info["preprocessing"] == {"fs": 100.0, "leads": list(STANDARD_LEADS), "seconds": 10.0}
    by_name = {i["name"]: i for i in info["indexes"]}
    assert by_name["reports"] == {"name": "reports", "items": "reports", "kind": "flat",
                                  "count": len(REPORTS), "dim": service.model.embed_dim}
    assert by_name["ecgs"]["items"] == "ecgs" and by_name["ecgs"]["count"] == 12
    assert "synthetic_rhythm" in info["tasks"] and info["tasks"]["mitbih"]["classes"]
    schema = client.get("/openapi.json").json()
    for path in ("/v1/zeroshot", "/v1/retrieve", "/v1/embed"):
        content = schema["paths"][path]["post"]["requestBody"]["content"]
        assert set(content) == {"application/json", "application/octet-stream",
                                "multipart/form-data"}


def test_zeroshot_equals_the_library_and_the_cli(client, service, record, capsys):
    path, signal = record
    model = service.model
    windows = model.preprocess(signal, 500, STANDARD_LEADS, windows=True)
    classifier = ZeroShotClassifier(model, CLASSES, kind="rhythm")
    got = client.post("/v1/zeroshot", json={"ecg": as_json(signal), "classes": CLASSES,
                                            "kind": "rhythm"})
    assert got.status_code == 200, got.text
    got = got.json()
    assert got["classes"] == CLASSES
    np.testing.assert_allclose(got["mean"], classifier.predict_windows(windows), atol=1e-5)
    np.testing.assert_allclose(got["probabilities"], classifier.predict_proba(windows),
                               atol=1e-5)
    assert got["windows"] == [[0.0, 10.0], [10.0, 20.0]]  # the partial last window is dropped
    # the CLI on the record as written (16-bit samples: the JSON above is the float signal)
    assert zeroshot_main(["--model", str(service.model.run_dir), "--record", str(path),
                          "--classes", *CLASSES, "--kind", "rhythm", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)["records"][0]["ranked"]
    uploaded = client.post("/v1/zeroshot", files=upload(path),
                           data={"classes": json.dumps(CLASSES), "kind": "rhythm"}).json()
    cli_mean = {r["class"]: r["probability"] for r in cli}
    np.testing.assert_allclose(uploaded["mean"], [cli_mean[c] for c in CLASSES], atol=1e-5)
    # the .npy body and a task
    npy = client.post("/v1/zeroshot?fs=500&leads=" + ",".join(STANDARD_LEADS) + "&kind=rhythm"
                      + "&classes=" + json.dumps(CLASSES),
                      content=npy_bytes(signal.astype(np.float32)),
                      headers={"content-type": "application/octet-stream"}).json()
    np.testing.assert_allclose(npy["mean"], got["mean"], atol=1e-5)
    task = client.post("/v1/zeroshot", json={"ecg": as_json(signal),
                                             "task": "synthetic_rhythm"}).json()
    assert len(task["classes"]) > 2 and abs(sum(task["mean"]) - 1) < 1e-5


def test_an_uploaded_challenge_record_scores_as_read_from_disk(client, service, make_ecg,
                                                               write_challenge, tmp_path):
    x, _ = make_ecg(500, seconds=12, seed=5)
    signal = np.stack([x * (1 + 0.05 * k) for k in range(12)])
    path = write_challenge(tmp_path / "a", "E0001", signal, 500, ["426783006"])
    got = client.post("/v1/zeroshot", files=upload(path), data={"classes": json.dumps(CLASSES)})
    assert got.status_code == 200, got.text
    expected = ZeroShotClassifier(service.model, CLASSES).predict_windows(
        service.model.record_windows(path))
    np.testing.assert_allclose(got.json()["mean"], expected, atol=1e-5)
    # the 2020 Georgia record line ("E0001.mat 12 500 ..."), which WFDB's parser refuses
    georgia = write_challenge(tmp_path / "b", "E0001", signal, 500, ["426783006"],
                              georgia_2020=True)
    again = client.post("/v1/zeroshot", files=upload(georgia),
                        data={"classes": json.dumps(CLASSES)})
    assert again.status_code == 200, again.text
    np.testing.assert_allclose(again.json()["mean"], expected, atol=1e-5)


def test_any_leads_and_order_and_a_list_of_ecgs(client, service, record):
    _, signal = record
    order = [7, 0, 3]
    names = [STANDARD_LEADS[k].lower() for k in order]
    one = client.post("/v1/zeroshot", json={"ecg": as_json(signal[order], leads=names),
                                            "classes": CLASSES}).json()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        windows = service.model.preprocess(signal[order], 500, names, windows=True)
    expected = ZeroShotClassifier(service.model, CLASSES).predict_windows(windows)
    np.testing.assert_allclose(one["mean"], expected, atol=1e-5)
    many = client.post("/v1/zeroshot", json={"ecgs": [as_json(signal),
                                                      as_json(signal[order], leads=names)],
                                             "classes": CLASSES}).json()
    assert isinstance(many, list) and len(many) == 2
    np.testing.assert_allclose(many[1]["mean"], one["mean"], atol=1e-5)


def test_retrieve_and_embed_equal_the_cli(client, service, served, record, capsys):
    path, signal = record
    assert retrieve_main(["--model", str(served["run"]), "--index", str(served["reports"]),
                          str(path), "-k", "3", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)["queries"][0]["results"]
    got = client.post("/v1/retrieve", files=upload(path), data={"index": "reports",
                                                                "k": "3"}).json()["results"]
    assert [h["text"] for h in got] == [h["text"] for h in cli]
    np.testing.assert_allclose([h["score"] for h in got], [h["score"] for h in cli], atol=1e-5)
    assert [h["rank"] for h in got] == [1, 2, 3]
    text = client.post("/v1/retrieve", json={"text": "atrial fibrillation.", "index": "ecgs",
                                             "k": 2}).json()["results"]
    assert [set(h) for h in text] == [{"rank", "score", "id"}] * 2
    assert text[0]["id"].startswith("ecg-")
    by_npy = client.post("/v1/retrieve?index=reports&k=3&fs=500&leads=" +
                         ",".join(STANDARD_LEADS), content=npy_bytes(signal),
                         headers={"content-type": "application/octet-stream"}).json()
    assert len(by_npy["results"]) == 3
    emb = client.post("/v1/embed", json={"ecg": as_json(signal)}).json()["embedding"]
    assert len(emb) == service.model.embed_dim and abs(np.linalg.norm(emb) - 1) < 1e-5
    report = client.post("/v1/embed", json={"text": "sinus rhythm."}).json()["embedding"]
    np.testing.assert_allclose(report, service.text_query("sinus rhythm.")[0],
                               atol=1e-5)


def test_the_page_its_files_and_the_examples(client):
    page = client.get("/")
    assert page.status_code == 200 and "<script src=\"/page/page.js\">" in page.text
    assert client.get("/page/page.js").status_code == 200
    assert client.get("/page/..%2Fapp.py").status_code == 404
    names = client.get("/v1/examples").json()["examples"]
    assert names == ["atrial_fibrillation", "sinus_bradycardia", "sinus_rhythm"]
    ecg = client.get(f"/v1/examples/{names[0]}").json()
    assert ecg["fs"] == 500 and len(ecg["leads"]) == 12 and len(ecg["signal"][0]) == 5000
    assert client.post("/v1/zeroshot", json={"ecg": ecg, "classes": CLASSES}).status_code == 200
    assert client.get("/v1/examples/nope").status_code == 404


# ----------------------------------------------------------------------- batching

def test_concurrent_requests_share_batches_and_health_answers_meanwhile(served, record):
    import httpx

    _, signal = record
    body = {"ecg": as_json(signal[:, :5000]), "classes": CLASSES}
    service = Service.load(served["run"], max_batch=16)
    encode = service.encode

    def slow(windows):
        time.sleep(0.3)
        return encode(windows)

    async def go():
        app = create_app(service)
        transport = httpx.ASGITransport(app=app)
        async with app.app.router.lifespan_context(app.app), \
                httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            batcher = app.state.batcher
            before = batcher.batches
            jobs = [asyncio.create_task(c.post("/v1/zeroshot", json=body)) for _ in range(12)]
            await asyncio.sleep(0.05)
            began = time.perf_counter()
            health = await c.get("/health")
            waited = time.perf_counter() - began
            answers = await asyncio.gather(*jobs)
            return before, answers, health, waited, batcher.batches

    service.encode = slow
    before, answers, health, waited, after = asyncio.run(go())
    service.close()
    assert all(a.status_code == 200 for a in answers)
    assert len({json.dumps(a.json()["mean"]) for a in answers}) == 1
    assert after - before <= 3  # twelve requests, 12 windows, batches of up to 16
    assert health.status_code == 200 and waited < 0.25  # not behind the 0.3 s batch


def test_a_lone_request_does_not_wait_for_company_and_others_are_waited_for():
    from concurrent.futures import ThreadPoolExecutor

    from mets_fast.serving.batcher import Batcher

    calls = []

    def run(jobs):
        calls.append(len(jobs))
        return [ValueError(f"job {j} is bad") if j < 0 else 2 * j for j in jobs]

    async def go():
        batcher = Batcher(run, ThreadPoolExecutor(1), max_batch=8, max_wait=1.0)
        batcher.start()
        began = time.perf_counter()
        alone = await batcher.submit(1)
        alone_s = time.perf_counter() - began

        async def request(k):  # three more on their way when the first submits: one batch
            with batcher.expecting():
                await asyncio.sleep(0.05 * k)
                future = batcher.submit(k if k != 2 else -2)
            return await future

        together = await asyncio.gather(*(request(k) for k in range(4)),
                                        return_exceptions=True)
        many = [batcher.submit(k) for k in range(20)]  # queued at once: split by max_batch
        many = await asyncio.gather(*many)
        await batcher.stop()
        return alone, alone_s, together, many

    alone, alone_s, together, many = asyncio.run(go())
    assert alone == 2 and alone_s < 0.5  # max_wait 1 s was not waited
    assert calls[:2] == [1, 4] and calls[2:] == [8, 8, 4]
    assert together[:2] == [0, 2] and together[3] == 6
    assert isinstance(together[2], ValueError) and "job -2" in str(together[2])
    assert many == [2 * k for k in range(20)]


def test_a_batch_stops_at_its_cost_so_a_large_request_delays_others_by_one_batch():
    from concurrent.futures import ThreadPoolExecutor

    from mets_fast.serving.batcher import Batcher

    calls = []

    def run(jobs):
        calls.append(list(jobs))
        return jobs

    async def go():
        batcher = Batcher(run, ThreadPoolExecutor(1), max_batch=8, max_wait=0.0,
                          cost=lambda windows: windows, max_cost=10)
        batcher.start()
        futures = [batcher.submit(w) for w in (6, 1, 1, 9, 1, 30, 1)]  # 30: over alone
        answers = await asyncio.gather(*futures)
        await batcher.stop()
        return answers

    assert asyncio.run(go()) == [6, 1, 1, 9, 1, 30, 1]  # in order, none lost
    assert calls == [[6, 1, 1], [9, 1], [30], [1]]


def test_a_batch_answers_each_job_and_a_bad_one_alone(served, record):
    """A batch's answers equal each job run alone; a record too short fails only its job;
    each index is searched once for all its jobs."""
    from mets_fast.serving.inputs import Recording
    from mets_fast.serving.service import Job

    _, signal = record
    service = Service.load(served["run"], {"reports": served["reports"]})
    searches = []
    index = service.indexes["reports"]
    original = index.search
    index.search = lambda q, k: (searches.append(len(q)), original(q, k))[1]
    prompts = service.prompts(CLASSES)
    jobs = [Job(Recording(signal[:, :5000], 500.0, list(STANDARD_LEADS)), prompts, "reports", 3),
            Job(Recording(signal[:, :20], 500.0, list(STANDARD_LEADS)), prompts, "reports", 3),
            Job(Recording(signal[::-1, 1000:8000], 500.0, list(STANDARD_LEADS)[::-1]),
                None, "reports", 5),
            Job(Recording(signal[:6, :6000] * 2, 250.0, list(STANDARD_LEADS)[:6]), prompts)]
    together = service.run_batch(jobs)
    assert searches == [2]
    alone = [service.run_batch([job])[0] for job in jobs]
    service.close()
    assert isinstance(together[1], ValueError) and isinstance(alone[1], ValueError)
    for j in (0, 2, 3):
        a, b = together[j], alone[j]
        assert a.spans == b.spans
        np.testing.assert_allclose(a.query, b.query, atol=1e-5)
        if a.hits is not None:
            assert [h["text"] for h in a.hits] == [h["text"] for h in b.hits]
            assert len(a.hits) == jobs[j].k
        if a.zeroshot is not None:
            np.testing.assert_allclose(a.zeroshot["mean"], b.zeroshot["mean"], atol=1e-5)
    assert together[2].zeroshot is None and together[3].hits is None


# ----------------------------------------------------------------------- safety

BAD = [  # (how it is sent, what it sends, the status, a phrase of the error)
    ("json", b"{not json", 400, "not valid JSON"),
    ("json", b"[1, 2]", 400, "must be an object"),
    ("json", {"ecg": {"signal": [[float("nan")] * 500] * 2, "fs": 500, "leads": ["I", "II"]},
              "classes": CLASSES}, 400, "NaN or infinite"),
    ("json", {"ecg": {"signal": [], "fs": 500, "leads": []}, "classes": CLASSES}, 400,
     "leads is empty"),
    ("json", {"ecg": {"signal": [[0.0]] * 65, "fs": 500, "leads": [f"L{k}" for k in range(65)]},
              "classes": CLASSES}, 400, "at most 64"),
    ("json", {"ecg": {"signal": [[0.0] * 600], "fs": 0, "leads": ["I"]}, "classes": CLASSES},
     400, "fs must be a positive number"),
    ("json", {"ecg": {"signal": [[0.1] * 100], "fs": 500, "leads": ["I"]}, "classes": CLASSES},
     400, "too short"),
    ("json", {"ecg": {"signal": [[0.1] * 5000], "fs": 500, "leads": ["I"]}, "classes": []},
     400, "classes is empty"),
    ("json", {"ecg": {"signal": [[0.1] * 5000], "fs": 500, "leads": ["I"]},
              "classes": ["a", "a"]}, 400, "given twice"),
    ("json", {"ecg": {"signal": [[0.1] * 5000], "fs": 500, "leads": ["I"]}, "task": "nope"},
     400, "unknown task"),
    ("json", {"ecg": {"signal": [[0.1, 0.2], [0.3]], "fs": 500, "leads": ["I", "II"]},
              "classes": CLASSES}, 400, "different lengths"),
    ("json", {"ecg": {"signal": [["a"] * 5000], "fs": 500, "leads": ["I"]},
              "classes": CLASSES}, 400, "numbers only"),
    ("json", {"ecg": {"signal": [[0.1] * 5000], "fs": 500, "leads": ["I", "I"]},
              "classes": CLASSES}, 400, "named twice"),
    ("npy", np.zeros((2, 10), dtype=object), 400, "integers or floats"),
    ("npy", "truncated", 400, "truncated"),
    ("npy", b"not a npy file at all", 400, "not a valid .npy"),
    ("npy", np.zeros((2, 3, 4)), 400, "(leads, samples)"),
    ("text", b"hello", 415, "not accepted"),
    ("json", {"ecg": {"signal": [[0.1] * 5000], "fs": 500, "leads": ["I"]}, "task": ["x"]},
     400, "must be strings"),
    ("json", {"ecg": {"signal": [[0.1] * 5000], "fs": 500, "leads": ["I"]},
              "classes": CLASSES, "kind": "other"}, 400, "kind must be one of"),
    ("json", {"ecg": {"signal": [[0.1] * 5000], "fs": 500, "leads": ["I"]}}, 400,
     "give classes or task"),
]


def send(client, path, how, what, query="fs=500&leads=I,II&classes=%5B%22a%22,%22b%22%5D"):
    if how == "json":
        body = what if isinstance(what, bytes) else json.dumps(what).encode()
        return client.post(path, content=body, headers={"content-type": "application/json"})
    if how == "npy":
        if isinstance(what, str):
            what = npy_bytes(np.zeros((2, 5000)))[:-100]
        elif isinstance(what, np.ndarray):
            buffer = io.BytesIO()
            np.save(buffer, what, allow_pickle=True)
            what = buffer.getvalue()
        return client.post(f"{path}?{query}", content=what,
                           headers={"content-type": "application/octet-stream"})
    return client.post(path, content=what, headers={"content-type": "text/plain"})


@pytest.mark.parametrize("how,what,status,phrase", BAD)
def test_bad_requests_get_4xx_naming_the_problem(client, how, what, status, phrase):
    answer = send(client, "/v1/zeroshot", how, what)
    assert answer.status_code == status, answer.text
    assert phrase in answer.json()["error"]
    assert client.get("/health").status_code == 200


def test_bad_fields_of_retrieve_and_uploads(client, record, tmp_path):
    path, signal = record
    ecg = as_json(signal)
    cases = [({"ecg": ecg, "index": "nope", "k": 1}, "unknown index"),
             ({"ecg": ecg, "index": "reports", "k": 0}, "k must be an integer from 1"),
             ({"ecg": ecg, "index": "reports", "k": 99}, "k must be an integer from 1"),
             ({"ecg": ecg, "text": "x", "index": "reports"}, "one of the two"),
             ({"text": "  ", "index": "reports"}, "non-empty report"),
             ({"ecgs": [], "index": "reports"}, "list of 1 to 16")]
    for body, phrase in cases:
        answer = client.post("/v1/retrieve", json=body)
        assert answer.status_code == 400 and phrase in answer.json()["error"], (body, answer.text)
    files = upload(path)
    only_header = [f for f in files if f[1][0].endswith(".hea")]
    answer = client.post("/v1/zeroshot", files=only_header, data={"classes": '["a","b"]'})
    assert answer.status_code == 400 and "was not uploaded" in answer.json()["error"]
    sneaky = [("files", ("../../etc/" + name, data)) for _, (name, data) in files]
    answer = client.post("/v1/zeroshot", files=sneaky, data={"classes": '["a","b"]'})
    assert answer.status_code == 200  # names compared, never used as paths
    assert not list(Path(tempfile.gettempdir()).glob("mets-fast-upload-*"))


def test_a_body_over_the_limit_is_refused_before_it_is_read(client):
    answer = client.post("/v1/zeroshot", content=b"0" * (5 * 2**20),
                         headers={"content-type": "application/json"})
    assert answer.status_code == 413 and "--max-upload-mb" in answer.json()["error"]

    def chunks():  # no content-length: counted as it comes
        for _ in range(80):
            yield b"0" * 65536

    answer = client.post("/v1/zeroshot", content=chunks(),
                         headers={"content-type": "application/json"})
    assert answer.status_code == 413


def test_the_api_key(service):
    with fastapi_testclient.TestClient(create_app(service, api_key="s3cret")) as c:
        assert c.get("/health").status_code == 200
        assert c.get("/").status_code == 200  # the page holds no data; its calls need the key
        for path in ("/v1/info", "/docs", "/openapi.json"):
            answer = c.get(path)
            assert answer.status_code == 401 and "Bearer" in answer.json()["error"]
        assert c.get("/v1/info", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/v1/info", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_serve_refuses_to_start_where_it_should(served, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("METS_FAST_API_KEY", raising=False)
    run = ["--model", str(served["run"])]
    cases = [(["--host", "0.0.0.0"], "without an API key"),
             (["--host", "192.168.1.7"], "without an API key"),
             (["--threads", "0"], "--threads"), (["--threads", "-1"], "--threads"),
             (["--index", "nofolder"], "NAME=DIR"),
             (["--index", f"a={tmp_path / 'missing'}"], "not a directory"),
             (["--index", f"a={served['reports']}", "--index", f"a={served['ecgs']}"], "twice"),
             (["--port", "70000"], "--port"), (["--max-upload-mb", "0"], "--max-upload-mb"),
             (["--api-key-file", str(tmp_path / "none")], "--api-key-file")]
    def exit_code(argv):
        try:
            return serve_main(argv)
        except SystemExit as exc:  # argparse's own refusals
            return exc.code

    for extra, phrase in cases:
        assert exit_code(run + extra) == 2, extra
        assert phrase in capsys.readouterr().err
    (tmp_path / "key").write_text("\n")
    assert exit_code(run + ["--host", "0.0.0.0", "--api-key-file", str(tmp_path / "key")]) == 2
    assert "is empty" in capsys.readouterr().err
    from mets_fast.serve import build_parser, settings

    monkeypatch.setenv("METS_FAST_API_KEY", "k3y-in-env")
    values = settings(build_parser().parse_args(run + ["--host", "0.0.0.0"]))
    # workers read the key where the user put it: it never travels in their settings
    assert "k3y-in-env" not in json.dumps(values) and values["api_key_file"] is None
    monkeypatch.delenv("METS_FAST_API_KEY")
    (tmp_path / "key").write_text("s3cret-in-file\n")
    values = settings(build_parser().parse_args(run + ["--host", "0.0.0.0", "--api-key-file",
                                                       str(tmp_path / "key")]))
    assert "s3cret-in-file" not in json.dumps(values)
    assert values["api_key_file"] == str((tmp_path / "key").resolve())
    for flag in ("--max-seconds", "--max-json-mb"):
        assert exit_code(run + [flag, "0"]) == 2 and flag in capsys.readouterr().err
    with socket.socket() as taken:  # a port in use: refused before the model is loaded
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        began = time.perf_counter()
        assert exit_code(run + ["--port", str(taken.getsockname()[1])]) == 2
        err = capsys.readouterr().err
        assert "cannot serve at 127.0.0.1" in err and "serving" not in err
        assert time.perf_counter() - began < 5


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def test_a_thousand_malformed_requests(client, record):
    """Every kind of bad request, 1,000 of them with random variations: each a 4xx naming
    the problem; the server still healthy, no temporary file left, memory flat."""
    _, signal = record
    rng = np.random.default_rng(0)
    files = upload(record[0])
    for _ in range(20):  # warm the paths before the memory is read
        send(client, "/v1/zeroshot", *BAD[rng.integers(len(BAD))][:2])
    start = _rss()
    for n in range(1000):
        how, what, status, phrase = BAD[rng.integers(len(BAD))]
        kind = rng.integers(4)
        if kind == 0:
            answer = send(client, "/v1/zeroshot", how, what)
        elif kind == 1:  # a random cut of a valid JSON body
            body = json.dumps({"ecg": as_json(signal[:2, :600], leads=["I", "II"]),
                               "classes": CLASSES}).encode()
            answer = send(client, "/v1/zeroshot", "json", body[:rng.integers(1, len(body))])
            status, phrase = 400, "not valid JSON"
        elif kind == 2:  # an upload missing its signal file, or bytes that are no header
            part = [f for f in files if f[1][0].endswith(".hea")] if rng.random() < 0.5 else \
                [("files", ("x.hea", rng.bytes(64)))]
            answer = client.post("/v1/zeroshot", files=part, data={"classes": '["a","b"]'})
            status, phrase = 400, ""
        else:
            answer = client.post("/v1/retrieve", json={"ecg": as_json(signal[:1, :5000],
                                                                      leads=["I"]),
                                                       "index": "reports",
                                                       "k": int(rng.integers(-5, 1))})
            status, phrase = 400, "k must be an integer"
        assert answer.status_code == status, (n, answer.text)
        error = answer.json()["error"]
        assert error and phrase in error, (n, error)
    assert client.get("/health").json()["status"] == "ok"
    assert not list(Path(tempfile.gettempdir()).glob("mets-fast-upload-*"))
    assert _rss() - start < 100 * 2**20


# ----------------------------------------------------------------------- the browser

def _browser():
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chrome or not driver:
        return None
    return chrome, driver


def test_the_page_in_a_real_browser(service, record, tmp_path):
    found = _browser()
    if found is None:
        pytest.skip("no browser: install Debian's chromium and chromium-driver (.ci/run does)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1200,1600"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=webdriver.ChromeService(executable_path=found[1]),
                               options=options)
    try:
        deadline = time.time() + 20
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        browser.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(browser, 30)
        wait.until(lambda b: b.find_element(By.ID, "model").text.startswith("model "))
        path = record[0]
        browser.find_element(By.ID, "files").send_keys(
            "\n".join(str(p) for p in sorted(path.parent.glob(path.name + ".*"))))
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "canvas.lead")) == 12)
        assert "12 leads, 500 Hz, 25.0 s" in browser.find_element(By.ID, "recordinfo").text
        box = browser.find_element(By.ID, "classes")
        box.clear()
        box.send_keys("\n".join(CLASSES))
        browser.find_element(By.ID, "classify").click()
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#chart .bar")) == 3)
        bars = browser.find_elements(By.CSS_SELECTOR, "#chart .bar")
        assert [b.get_attribute("data-class") for b in bars] == CLASSES
        shown = [float(b.get_attribute("data-probability")) for b in bars]
        windows = service.model.preprocess(record[1], 500, STANDARD_LEADS, windows=True)
        np.testing.assert_allclose(
            shown, ZeroShotClassifier(service.model, CLASSES, kind="rhythm")
            .predict_windows(windows), atol=1e-3)
        browser.find_element(By.ID, "retrieve").click()
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#results tbody tr")) == 5)
        cells = [r.find_elements(By.TAG_NAME, "td")
                 for r in browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")]
        assert [c[0].text for c in cells] == ["1", "2", "3", "4", "5"]
        assert all(c[2].text in REPORTS for c in cells)
        shot = tmp_path / "page.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        if os.environ.get("METS_FAST_SCREENSHOT"):
            shutil.copy(shot, os.environ["METS_FAST_SCREENSHOT"])
    finally:
        browser.quit()
        server.should_exit = True
        thread.join(10)


def test_serve_runs_under_uvicorn_with_two_workers(served):
    """The command itself: two worker processes behind one port, each with the model."""
    import subprocess
    import sys

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "mets_fast.serve", "--model",
                               str(served["run"]), "--index", f"reports={served['reports']}",
                               "--port", str(port), "--workers", "2", "--threads", "1"],
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline, health = time.time() + 120, None
        while time.time() < deadline and server.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert health is not None and health.json()["status"] == "ok", server.poll()
        info = httpx.get(f"http://127.0.0.1:{port}/v1/info", timeout=10).json()
        assert info["indexes"][0]["name"] == "reports"
    finally:
        server.terminate()
        _, err = server.communicate(timeout=60)
    assert "with 2 workers" in err


# ----------------------------------------------------------- the third hostile round

@pytest.fixture(scope="module")
def limited(served):
    """A server with small bounds on the work of a request."""
    from mets_fast.serving.limits import Limits

    service = Service.load(served["run"], {"reports": served["reports"]}, max_batch=16,
                           limits=Limits(seconds=30, samples=12 * 30 * 500, windows=4,
                                         classes=5, descriptions=2, text=50, memory=8))
    with fastapi_testclient.TestClient(create_app(service, max_upload_mb=4,
                                                  max_json_mb=2)) as c:
        yield c, service
    service.close()


def test_the_work_of_one_request_is_bounded(limited, record):
    client, service = limited
    _, signal = record
    long = {"signal": [[0.1] * (31 * 50)], "fs": 50, "leads": ["I"]}
    ecg = as_json(np.round(signal[:2, :10000], 3), leads=["I", "II"])  # 20 s: 2 windows
    cases = [({"ecg": long, "classes": CLASSES}, 413, "lasts 31 s", "--max-seconds"),
             ({"ecgs": [ecg] * 3, "classes": CLASSES}, 413, "6 windows", "--max-windows"),
             ({"ecg": ecg, "classes": [f"c{k}" for k in range(6)]}, 422, "6 classes",
              "--max-classes"),
             ({"ecg": ecg, "classes": {"a": ["x", "y", "z"], "b": ["w"]}}, 422,
              "3 descriptions", "--max-descriptions"),
             ({"ecg": ecg, "classes": ["a" * 51, "b"]}, 422, "51 characters", "--max-text")]
    for body, status, phrase, flag in cases:
        answer = client.post("/v1/zeroshot", json=body)
        assert answer.status_code == status, answer.text
        assert phrase in answer.json()["error"] and flag in answer.json()["error"]
    answer = client.post("/v1/retrieve", json={"text": "x" * 51, "index": "reports"})
    assert answer.status_code == 422 and "--max-text" in answer.json()["error"]
    npy = npy_bytes(np.zeros((1, 3_000_000), dtype=np.float32))[:200]  # the header suffices
    answer = client.post("/v1/zeroshot?fs=50&leads=I", content=npy,
                         headers={"content-type": "application/octet-stream"})
    assert answer.status_code == 413 and "lasts 60,000 s" in answer.json()["error"]
    # the bounds hold: ECGs within them are answered
    assert client.post("/v1/zeroshot", json={"ecgs": [ecg] * 2, "classes": CLASSES}
                       ).status_code == 200


def test_prompts_are_kept_in_bounded_memory_and_never_written_to_disk(limited, record):
    client, service = limited
    _, signal = record
    encoder = service.model.text_encoder()
    assert encoder._cache_dir is None  # nothing a client sends goes to the disk cache
    for k in range(12):
        body = {"ecg": as_json(np.round(signal[:, :5000], 3)),
                "classes": [f"class {k}", f"other {k}"]}
        assert client.post("/v1/zeroshot", json=body).status_code == 200
    assert len(encoder._memory) <= 8
    assert client.get("/v1/info").json()["limits"]["classes"] == 5  # clients can see them


def test_health_answers_while_large_bodies_are_parsed(served, record):
    """Six JSON ECGs just under the default JSON limit (8 MB) at once: parsed off the event
    loop, one at a time, so /health keeps answering within 0.25 s; with a small reading
    budget, bodies past it are answered 503 (memory stays bounded)."""
    import httpx

    _, signal = record
    service = Service.load(served["run"], max_batch=16)
    rows = np.tile(signal, 3)[:, :33000] * 1.000001  # full float64 digits: ~18 B a sample
    big = json.dumps({"ecg": as_json(rows), "classes": CLASSES}).encode()
    assert 6 * 2**20 < len(big) < 8 * 2**20

    async def go(reading_mb):
        app = create_app(service, max_reading_mb=reading_mb)
        transport = httpx.ASGITransport(app=app)
        async with app.app.router.lifespan_context(app.app), \
                httpx.AsyncClient(transport=transport, base_url="http://t", timeout=120) as c:
            jobs = [asyncio.create_task(c.post("/v1/zeroshot", content=big,
                                               headers={"content-type": "application/json"}))
                    for _ in range(6)]
            waits = []
            while not all(j.done() for j in jobs):
                began = time.perf_counter()
                assert (await c.get("/health")).status_code == 200
                waits.append(time.perf_counter() - began)
                await asyncio.sleep(0.02)
            return await asyncio.gather(*jobs), waits

    answers, waits = asyncio.run(go(None))
    assert [a.status_code for a in answers] == [200] * 6
    assert len(waits) > 5 and max(waits) < 0.25, waits
    answers, _ = asyncio.run(go(16))
    service.close()
    codes = [a.status_code for a in answers]
    assert 200 in codes and 503 in codes and set(codes) == {200, 503}, codes
    refused = next(a for a in answers if a.status_code == 503)
    assert "try again" in refused.json()["error"] and refused.headers["retry-after"] == "1"


def test_requests_that_crashed_the_server_get_4xx(client, record):
    _, signal = record
    deep = b'{"ecg": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    answer = client.post("/v1/zeroshot", content=deep, headers={"content-type": "application/json"})
    assert answer.status_code == 400 and "nested too deeply" in answer.json()["error"]
    huge = json.dumps({"ecg": {"signal": [[0.1] * 4999 + [10 ** 400]], "fs": 500,
                               "leads": ["I"]}, "classes": CLASSES})
    answer = client.post("/v1/zeroshot", content=huge, headers={"content-type": "application/json"})
    assert answer.status_code == 400 and "float64's range" in answer.json()["error"]
    for shape in ("(2, -5000)", "(-2, 5000)"):
        npy = npy_bytes(np.zeros((2, 5000))).replace(b"(2, 5000)", shape.encode().ljust(9))
        answer = client.post("/v1/zeroshot?fs=500&leads=I,II&classes=%5B%22a%22,%22b%22%5D",
                             content=npy, headers={"content-type": "application/octet-stream"})
        assert answer.status_code == 400 and "(leads, samples)" in answer.json()["error"]
    answer = client.post("/v1/zeroshot?fs=500&leads=I,II&classes=%5B%22a%22,%22b%22%5D",
                         content=npy_bytes(np.zeros((2, 5000))) + b"extra",
                         headers={"content-type": "application/octet-stream"})
    assert answer.status_code == 400 and "longer than its array" in answer.json()["error"]
    answer = client.post("/v1/retrieve", json={"ecg": as_json(signal), "index": "reports",
                                               "k": "\u0663"})
    assert answer.status_code == 400 and "k must be an integer" in answer.json()["error"]
    answer = client.post("/v1/zeroshot", content=b"{}", headers={
        "content-type": "application/json", "content-length": b"\xb2"})
    assert answer.status_code == 400


def test_warnings_are_returned_and_a_bad_entry_is_named(client, record):
    _, signal = record
    two = {"signal": signal[:2, :5000].tolist(), "fs": 500, "leads": ["foo", "II"]}
    answer = client.post("/v1/zeroshot", json={"ecg": two, "classes": CLASSES})
    assert answer.status_code == 200
    warned = " ".join(answer.json()["warnings"])
    assert "foo" in warned and "lacks the lead(s)" in warned
    ok = as_json(signal[:, :5000])
    short = {"signal": [[0.1] * 100], "fs": 500, "leads": ["I"]}
    answer = client.post("/v1/zeroshot", json={"ecgs": [ok, ok, short], "classes": CLASSES})
    assert answer.status_code == 400 and answer.json()["error"].startswith("ecgs[2]: ")
    answer = client.post("/v1/zeroshot", json={"ecgs": [ok, {"signal": 1}], "classes": CLASSES})
    assert answer.status_code == 400 and answer.json()["error"].startswith("ecgs[1]: ")
    answer = client.post("/v1/embed", json={"ecg": ok})
    assert answer.status_code == 200 and answer.json()["warnings"] == []


def test_a_record_with_invalid_samples_round_trips_through_the_page_api(client, tmp_path,
                                                                        make_ecg):
    """/v1/record's JSON (null for invalid samples, float32-exact values) is what
    /v1/zeroshot takes back, and scores as the CLI scores the record."""
    import wfdb

    x, _ = make_ecg(500, seconds=10, seed=5)
    signal = np.stack([x * (1 + 0.1 * k) for k in range(12)]).T.copy()
    digital = np.round(signal * 1000).astype(np.int16)
    digital[100:150, 3] = -32768  # invalid samples (format 16's code)
    wfdb.wrsamp("gappy", fs=500, units=["mV"] * 12, sig_name=list(STANDARD_LEADS),
                d_signal=digital, fmt=["16"] * 12, adc_gain=[1000.0] * 12,
                baseline=[0] * 12, write_dir=str(tmp_path))
    path = tmp_path / "gappy"
    shown = client.post("/v1/record", files=upload(path))
    assert shown.status_code == 200
    ecg = shown.json()
    assert ecg["signal"][3][100] is None and ecg["signal"][3][99] is not None
    answer = client.post("/v1/zeroshot", json={"ecg": ecg, "classes": CLASSES})
    assert answer.status_code == 200, answer.text
    # the record as read from its files (what the CLI reads): the same to 1e-6 (4 decimals
    # of the samples, as before, gave 1e-5)
    uploaded = client.post("/v1/zeroshot", files=upload(path),
                           data={"classes": json.dumps(CLASSES)})
    np.testing.assert_allclose(answer.json()["mean"], uploaded.json()["mean"], atol=1e-6)


def test_upload_errors_name_the_clients_files_not_the_servers(client, record):
    path, _ = record
    files = upload(path)
    damaged = [(f, (name, data if name.endswith(".hea") else data[:1000]))
               for f, (name, data) in files]
    answer = client.post("/v1/zeroshot", files=damaged, data={"classes": '["a","b"]'})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert "mets-fast-upload" not in error and tempfile.gettempdir() not in error, error


def test_a_challenge_header_that_disagrees_with_its_matrix_is_refused(client, tmp_path,
                                                                     make_ecg, write_challenge):
    """One rule in one home: read_record (zeroshot --record, uploads) refuses what prepare
    refuses, and reads the Georgia 2020 record line that wfdb refuses."""
    from mets_fast.data import read_record

    x, _ = make_ecg(500, seconds=10, seed=2)
    rec = write_challenge(tmp_path / "c", "E00009", np.stack([x] * 12), 500, ["164889003"])
    header = rec.with_suffix(".hea")
    first, rest = header.read_text().split("\n", 1)
    header.write_text(f"E00009.mat 12 500 5000 05-May-2020 14:50:55\n{rest}")
    assert read_record(rec).signal.shape == (12, 5000)
    answer = client.post("/v1/zeroshot", files=upload(rec), data={"classes": '["a","b"]'})
    assert answer.status_code == 200, answer.text
    lines = header.read_text().splitlines()
    header.write_text("\n".join(["E00009.mat 6 500 5000"] + lines[1:7] + lines[13:]) + "\n")
    with pytest.raises(ValueError, match="declares 6 signals"):
        read_record(rec)
    answer = client.post("/v1/zeroshot", files=upload(rec), data={"classes": '["a","b"]'})
    assert answer.status_code == 400 and "declares 6 signals" in answer.json()["error"]


def test_the_api_key_scheme_is_case_insensitive(service):
    with fastapi_testclient.TestClient(create_app(service, api_key="s3cret")) as c:
        for header in ("Bearer s3cret", "bearer s3cret", "BEARER  s3cret"):
            assert c.get("/v1/info", headers={"Authorization": header}).status_code == 200
        for header in ("Bearer s3cre", "Basic s3cret", "s3cret"):
            assert c.get("/v1/info", headers={"Authorization": header}).status_code == 401
