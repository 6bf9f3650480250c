"""The bfloat16 rule (mets_fast.precision): autocast only where the CPU computes bfloat16
natively, whatever CPU runs the tests (the stand-ins and torch's queries are set here)."""

import json
import os

import numpy as np
import pytest
import torch

from mets_fast.cli import main as cli_main
from mets_fast.model.mets import METSModel
from mets_fast.precision import choose, cpu_bf16
from mets_fast.training.trainer import precision_of, resolve


@pytest.fixture
def native(monkeypatch):
    """Makes torch report a CPU with (True) or without (False) bfloat16 instructions."""
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("METS_FAST_CPU_ISA", raising=False)

    def set_to(has: bool) -> None:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: has)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: has)

    return set_to


def test_a_cpu_without_bf16_trains_in_float32(native):
    native(False)
    assert cpu_bf16()[0] is False
    chosen = choose("cpu", preset=True)
    assert not chosen.amp and "no bfloat16 instructions" in chosen.reason
    for preset in ("default", "real", "smoke"):
        assert resolve(preset=preset, out="x").amp is False
    asked = choose("cpu", preset=True, requested=True)
    assert asked.amp and "emulated" in asked.reason and "--no-amp" in asked.reason
    assert resolve(preset="smoke", amp=True, out="x").amp is True
    assert "emulated" in precision_of(resolve(preset="smoke", amp=True, out="x")).reason


def test_a_cpu_with_bf16_keeps_the_presets_choice(native):
    native(True)
    assert resolve(preset="default", out="x").amp is True
    assert resolve(preset="paper", out="x").amp is False  # the paper's float32
    assert resolve(preset="default", amp=False, out="x").amp is False
    reason = precision_of(resolve(preset="default", out="x")).reason
    assert reason == "bfloat16 autocast (the CPU has AMX and AVX512-BF16)"


@pytest.mark.parametrize("variable,value", [("ONEDNN_MAX_CPU_ISA", "AVX2"),
                                            ("ONEDNN_MAX_CPU_ISA", "avx512_core"),
                                            ("METS_FAST_CPU_ISA", "avx2"),
                                            ("METS_FAST_CPU_ISA", "portable")])
def test_stand_ins_for_an_older_cpu_are_obeyed(native, monkeypatch, variable, value):
    native(True)
    monkeypatch.setenv(variable, value)
    has, what = cpu_bf16()
    assert not has and variable in what
    assert resolve(out="x").amp is False


def test_stand_ins_that_keep_bf16(native, monkeypatch):
    native(True)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    monkeypatch.setenv("METS_FAST_CPU_ISA", "avx512")
    assert cpu_bf16()[0]
    monkeypatch.setenv("METS_FAST_CPU_ISA", "sse9")
    with pytest.raises(ValueError, match="METS_FAST_CPU_ISA must be one of"):
        cpu_bf16()


def test_a_bf16_model_embeds_in_float32_where_bf16_is_emulated(native):
    torch.manual_seed(0)
    model = METSModel(16, 8, amp=True)
    x = np.random.default_rng(0).standard_normal((9, 12, 1000)).astype(np.float32)
    plain = model.embed_ecgs(x, amp=False)
    native(False)
    assert torch.equal(model.embed_ecgs(x), plain)  # the default: float32 here
    assert not torch.equal(model.embed_ecgs(x, amp=True), plain)  # asked: bfloat16
    native(True)
    assert not torch.equal(model.embed_ecgs(x), plain)


def test_info_says_which_arithmetic(native, capsys):
    native(False)
    assert cli_main(["info"]) == 0
    precision = json.loads(capsys.readouterr().out)["precision"]
    assert precision["cpu_bf16_native"] is False and "float32" in precision["cpu"]


@pytest.mark.parametrize("isa", ["portable", "avx2"])
def test_the_isa_stand_in_also_holds_the_packages_own_kernels(isa):
    import subprocess
    import sys

    from mets_fast.loss import _C

    if isa not in _C.available_isas():
        pytest.skip(f"this CPU or build has no {isa} kernels")
    env = {**os.environ, "METS_FAST_CPU_ISA": isa}
    shown = subprocess.run([sys.executable, "-m", "mets_fast", "info"], env=env,
                           capture_output=True, text=True, check=True).stdout
    info = json.loads(shown)
    assert info["backends"]["cpu_isa"] == isa and info["precision"]["cpu_bf16_native"] is False
    env["METS_FAST_CPU_ISA"] = "sse9"
    failed = subprocess.run([sys.executable, "-m", "mets_fast", "info"], env=env,
                            capture_output=True, text=True)
    assert failed.returncode != 0 and "METS_FAST_CPU_ISA must be one of" in failed.stderr
