"""The package's layout keeps its promises: no import cycle, every import goes down the layering
order written in docs/design.md, every CLI's --threads reaches every thread pool, and writers
never share a temporary name."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "mets_fast"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set) -> set:
    """The package modules `name` imports, at module level or inside functions."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # `from .x import y` names a module y, or a name defined in x
            targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in known else stem
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict:
    modules = _modules()
    known = set(modules)
    graph = {name: _imports(name, path, known) for name, path in modules.items()}
    # importing a.b.c runs a/__init__ and a/b/__init__ first: those edges are implicit, not
    # the importer's choice, so only the named module counts.
    return graph


def _layers() -> list:
    """The layering order of docs/design.md: the numbered lines between its markers, each a
    list of module or package names (relative to mets_fast)."""
    text = (ROOT / "docs" / "design.md").read_text()
    block = text.split("<!-- layers -->")[1].split("<!-- /layers -->")[0]
    layers = []
    for line in block.splitlines():
        match = re.match(r"\s*\d+\.\s+(.*?)(?::|$)", line)
        if match:
            layers.append([n.strip().strip("`").rstrip("/") for n in match.group(1).split(",")])
    return layers


def _layer_of(module: str, layers: list) -> int:
    rest = module.removeprefix("mets_fast").lstrip(".") or "__init__"
    best = None
    for k, names in enumerate(layers):
        for n in names:
            if rest == n or rest.startswith(n + "."):
                if best is None or len(n) > best[1]:
                    best = (k, len(n))
    if best is None:
        raise AssertionError(f"{module} is in no layer of docs/design.md")
    return best[0]


def _cycles(graph: dict) -> list:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    assert len(graph) > 60  # the whole package was read
    assert _cycles(graph) == []


def test_cycles_are_found():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_follow_the_layering_order_of_the_design_page():
    layers = _layers()
    assert len(layers) >= 8
    wrong = []
    for module, targets in _graph().items():
        mine = _layer_of(module, layers)
        for target in targets:
            if _layer_of(target, layers) > mine:
                wrong.append(f"{module} (layer {mine + 1}) imports {target} (layer "
                             f"{_layer_of(target, layers) + 1})")
    assert wrong == []


def test_the_graph_sees_function_level_and_relative_imports():
    graph = _graph()
    assert "mets_fast.evaluation.evaluate" in graph["mets_fast.training.trainer"]
    # a function-level import: the model rebuilds its language model on first use
    assert "mets_fast.text" in graph["mets_fast.model.mets"]
    assert "mets_fast.data.sources.items" in graph["mets_fast.data.sources.wfdb"]


# ------------------------------------------------------------------------- thread settings

@pytest.fixture
def restore_threads():
    import numba
    import torch

    before = torch.get_num_threads(), numba.get_num_threads()
    yield
    from mets_fast.threads import set_threads

    set_threads(before[0])
    numba.set_num_threads(before[1])


def _reset_to_two():
    import numba
    import torch

    torch.set_num_threads(2)
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))


def _assert_one_thread():
    import faiss
    import numba
    import torch
    from threadpoolctl import threadpool_info

    assert torch.get_num_threads() == 1
    assert numba.get_num_threads() == 1
    assert faiss.omp_get_max_threads() == 1
    assert all(p["num_threads"] == 1 for p in threadpool_info())


def test_set_threads_sets_every_pool(restore_threads):
    from mets_fast.threads import set_threads

    _reset_to_two()
    assert set_threads(1) == 1
    _assert_one_thread()
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            set_threads(bad)


def test_every_cli_leaves_one_thread_everywhere(restore_threads, trained, tmp_path,
                                                twelve_lead):
    """Each command's main([... '--threads', '1']) on a small real job."""
    from mets_fast import embed, index, linear_probe, prepare, retrieve, zeroshot

    record = str(twelve_lead[0])
    store = tmp_path / "store"
    idx = tmp_path / "idx"
    jobs = [
        (prepare.main, ["synthetic", "--n", "40", "--out", str(store), "--quiet"]),
        (embed.main, ["--model", str(trained), "--store", str(store), "--out",
                      str(tmp_path / "e.npy"), "--quiet"]),
        (index.main, ["build", "--model", str(trained), "--store", str(store), "--out", str(idx),
                      "--quiet"]),
        (retrieve.main, ["--model", str(trained), "--index", str(idx), "--text", "x", "--json"]),
        (zeroshot.main, ["--model", str(trained), "--record", record, "--classes", "a", "b",
                         "--json"]),
        (linear_probe.main, ["--model", str(trained), "--data", f"store:{store}", "--quiet"]),
    ]
    for main, argv in jobs:
        _reset_to_two()
        code = main(argv + ["--threads", "1"])
        assert code in (0, 1), (main.__module__, code)  # a probe on 40 ECGs may find no task
        _assert_one_thread()


def test_train_cli_leaves_one_thread(restore_threads, tiny_lm, tmp_path):
    from mets_fast.train import main

    _reset_to_two()
    assert main(["--preset", "smoke", "--lm", str(tiny_lm), "--corpus-size", "64",
                 "--batch-size", "16", "--embed-dim", "8", "--out", str(tmp_path / "run"),
                 "--quiet", "--threads", "1"]) == 0
    _assert_one_thread()


# --------------------------------------------------------------------------- atomic writes

def test_writers_of_one_target_never_share_a_temporary_name(tmp_path):
    from mets_fast.atomic import atomic_file, temp_path

    target = tmp_path / "index.json"
    names = {temp_path(target) for _ in range(1000)}
    assert len(names) == 1000 and all(n.parent == tmp_path for n in names)
    with atomic_file(target) as first, atomic_file(target) as second:
        assert first != second
        first.write_text("one")
        second.write_text("two")
    # the inner writer commits first, the outer one last: each wrote its own whole file
    assert target.read_text() == "one" and sorted(tmp_path.iterdir()) == [target]


def test_a_failed_write_leaves_the_target_and_no_temporary(tmp_path):
    from mets_fast.atomic import atomic_file, write_text

    target = tmp_path / "a.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old" and sorted(tmp_path.iterdir()) == [target]


def test_writers_of_a_run_file_an_index_and_a_store_use_names_of_their_own(tmp_path,
                                                                            monkeypatch):
    """Run files, index files and store (cache entry) directories all take their temporary
    names from atomic.temp_path: every name handed out while each target is written twice is
    new, and none is left behind."""
    import numpy as np

    from mets_fast import atomic
    from mets_fast.data import StoreWriter
    from mets_fast.jsonio import write_json
    from mets_fast.retrieval.index import EmbeddingIndex

    handed = []
    original = atomic.temp_path

    def recording(target, suffix=""):
        handed.append(original(target, suffix))
        return handed[-1]

    monkeypatch.setattr(atomic, "temp_path", recording)
    vectors = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    for _ in range(2):
        write_json(tmp_path / "args.json", {"a": 1})
        EmbeddingIndex.build(vectors, [str(i) for i in range(20)]).save(tmp_path / "idx")
        with StoreWriter(tmp_path / "store", 2, ["I"], 10, 100.0, overwrite=True) as w:
            w.set_meta(_meta(2))
    assert len(handed) >= 10 and len(set(handed)) == len(handed)
    assert not [p for p in tmp_path.rglob(".*tmp-*")]


def _meta(n):
    import pandas as pd

    from mets_fast.data.store import store_row

    return pd.DataFrame([store_row(f"e{i}", "sinus rhythm.", "train", "test") for i in range(n)])



# ------------------------------------------------------------------------ the public face

def test_the_readme_python_example_runs(trained):
    """The README's first Python example, run as written on a trained run."""
    text = (ROOT / "README.md").read_text()
    example = text.split("```python\n", 1)[1].split("```", 1)[0]
    assert "mets_fast.ZeroShotClassifier" in example and "EmbeddingIndex" in example
    code = example.replace('"runs/mine"', repr(str(trained)))
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["proba"].shape == (1, 2) and abs(scope["proba"].sum() - 1) < 1e-5
    assert len(scope["hits"][0]) == 2 and scope["hits"][0][0][0] in scope["reports"]
    assert scope["head"](__import__("torch").zeros(1, 12, 1000)).shape == (1, 5)


def test_the_public_face_names_resolve():
    import mets_fast

    for name in mets_fast.__all__:
        assert getattr(mets_fast, name) is not None
    assert mets_fast.EmbeddingIndex.__module__ == "mets_fast.retrieval.index"


# --------------------------------------------------------------------------- file versions

def test_one_version_policy():
    from mets_fast.versions import check_version

    assert check_version(2, 2, what="x", path="f", remake="r") == 2
    assert check_version(1, 2, what="x", path="f", remake="r", readable=(1, 2)) == 1
    with pytest.raises(ValueError, match=r"f was written by a newer mets_fast \(x format version "
                                         r"3; this one reads up to 2\): upgrade"):
        check_version(3, 2, what="x", path="f", remake="r")
    with pytest.raises(ValueError, match="no longer reads .*: prepare again"):
        check_version(1, 2, what="x", path="f", remake="prepare again")
    for bad in ("2", 2.0, None, True):
        with pytest.raises(ValueError, match="damaged"):
            check_version(bad, 2, what="x", path="f", remake="r")


def test_an_index_of_format_version_1_is_still_read(tmp_path):
    import json

    import numpy as np

    from mets_fast.retrieval.index import EmbeddingIndex

    x = np.random.default_rng(1).normal(size=(12, 4)).astype(np.float32)
    EmbeddingIndex.build(x, [str(i) for i in range(12)], items="ecgs").save(tmp_path / "i")
    manifest = json.loads((tmp_path / "i" / "index.json").read_text())
    assert manifest["version"] == 2 and manifest["items"] == "ecgs"
    manifest["version"] = 1
    manifest["contents"] = manifest.pop("items")
    (tmp_path / "i" / "index.json").write_text(json.dumps(manifest))
    old = EmbeddingIndex.load(tmp_path / "i")
    assert old.items == "ecgs" and old.search_texts(x[:1], 1)[0][0][0] == "0"
