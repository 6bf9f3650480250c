"""The MERL benchmark: the shipped split files, the prompts, the published table, and the
zero-shot and probe commands on data found by id (a Challenge tree written here with CPSC2018
records named as MERL's split files name them; the PTB-XL subset where it is present)."""

import json

import numpy as np
import pytest

from mets_fast.evaluation.merl import SETS, class_prompts, merl_split, published
from mets_fast.linear_probe import main as probe_main
from mets_fast.zeroshot import main as zeroshot_main


def test_the_split_files_are_merls_six_sets():
    sizes = {task: (len(merl_split(task, "test").ids), len(merl_split(task, "test").classes))
             for task in SETS}
    assert sizes == {"ptbxl_super": (2158, 5), "ptbxl_sub": (2158, 23), "ptbxl_form": (880, 19),
                     "ptbxl_rhythm": (2098, 12), "cpsc2018": (1376, 9), "csn": (4620, 38)}
    for task in SETS:
        splits = [set(merl_split(task, s).ids) for s in ("train", "val", "test")]
        assert not (splits[0] & splits[2]) and not (splits[1] & splits[2])  # disjoint
        test = merl_split(task, "test")
        assert test.targets.shape == (len(test.ids), len(test.classes))
        assert set(np.unique(test.targets)) <= {0, 1}
    assert merl_split("csn", "test").ids[0] == "JS18048"
    with pytest.raises(ValueError, match="unknown MERL set"):
        merl_split("ptbxl_all", "test")


def test_prompts_and_published_figures():
    merl, templates = class_prompts(("AFIB", "NORM"), "merl")
    assert templates == ["{}"] and len(merl["AFIB"][0]) > 20
    mets, templates = class_prompts(("AFIB",), "mets")
    assert "," not in mets["AFIB"][0] and "{}" in templates[0]
    table = published()
    merl_row = table["zeroshot"][0]
    assert merl_row["model"] == "MERL" and merl_row["average"] == 75.2
    assert abs(np.mean(list(merl_row["auroc"].values())) - 75.2) < 0.05
    for row in table["zeroshot"]:
        assert row["paper"] and row["checked"] and set(row["average_over"]) <= set(SETS)


@pytest.fixture
def cpsc_tree(tmp_path, make_ecg, write_challenge):
    """CPSC2018 records named as MERL's cpsc2018 split files name them (4 train, 6 test),
    labelled with SNOMED codes of AF or sinus rhythm."""
    root = tmp_path / "cpsc"
    for split, count in (("train", 4), ("test", 6)):
        s = merl_split("cpsc2018", split)
        for k in range(count):
            x, _ = make_ecg(500, seconds=12, seed=k)
            write_challenge(root, s.ids[k], np.stack([x] * 12), 500, ["164889003"])
    return root


def test_the_benchmark_zero_shot_and_probe_on_data_found_by_id(trained, cpsc_tree, tmp_path,
                                                               capsys):
    out = tmp_path / "z"
    assert zeroshot_main(["--model", str(trained), "--benchmark", "merl", "--challenge",
                          str(cpsc_tree), "--prompts", "mets", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| cpsc2018 | 6 of 1,376 |" in printed
    assert "| ptbxl_super | 0 of 2,158 (no data given (--ptbxl)) | - |" in printed
    assert "| average | cpsc2018 |" in printed and "75.2 (all six)" in printed
    result = json.loads((out / "zeroshot.json").read_text())
    row = result["sets"]["cpsc2018"]
    assert row["found"] == 6 and result["average_over"] == ["cpsc2018"]
    assert result["prompts"] == "mets" and (out / "merl.png").is_file()
    assert (out / "merl.md").read_text().startswith("| MERL set")
    assert probe_main(["--model", str(trained), "--benchmark", "merl", "--challenge",
                       str(cpsc_tree), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| cpsc2018 | auroc | pretrained |" in printed and "| cpsc2018 | auroc | random |" \
        in printed
    assert "note: cpsc2018: 4 of 4,950 train and 6 of 1,376 test ECGs found" in printed


def test_the_ptbxl_subset_finds_merls_test_ecgs(trained, shared_data, capsys):
    root = shared_data / "ptbxl-subset"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    assert zeroshot_main(["--model", str(trained), "--benchmark", "merl", "--ptbxl", str(root),
                          "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    found = [result["sets"][t]["found"] for t in ("ptbxl_super", "ptbxl_sub", "ptbxl_form",
                                                   "ptbxl_rhythm")]
    assert found == [63, 63, 16, 64]
    assert all(0 <= result["sets"][t]["auroc"] <= 1 for t in ("ptbxl_super", "ptbxl_rhythm"))


def test_a_benchmark_that_scores_no_set_fails(trained, tmp_path, make_ecg, write_challenge,
                                              capsys):
    root = tmp_path / "other"
    x, _ = make_ecg(500, seconds=12, seed=0)
    write_challenge(root, "Q0001", np.stack([x] * 12), 500, ["164889003"])  # in no MERL set
    assert zeroshot_main(["--model", str(trained), "--benchmark", "merl", "--challenge",
                          str(root), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "no MERL set could be scored" in err and "cpsc2018: none of its test ECGs" in err
    for leads in ("", ","):  # one rule for --leads everywhere: an empty list is refused
        assert zeroshot_main(["--model", str(trained), "--benchmark", "merl", "--challenge",
                              str(root), "--leads", leads]) == 2
        assert "--leads must be comma-separated" in capsys.readouterr().err
