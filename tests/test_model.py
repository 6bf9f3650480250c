"""The METS model: the ResNet1d-18 encoder, the projections and the loss, preprocessing of any
recording exactly as the store's, and run directories (save, load, refusals)."""

import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mets_fast
from mets_fast.data import STANDARD_LEADS, ECGStore, read_record
from mets_fast.data.preprocess import Settings, fit_length, prepare_recording, preprocess
from mets_fast.loss import reference_contrastive_loss
from mets_fast.model import METSModel, ResNet1d
from mets_fast.model import checkpoint
from mets_fast.prepare import main as prepare_main

SETTINGS = Settings(100.0, 10.0, STANDARD_LEADS, True, 50.0, "lead", "float16")


def small_model(text_dim=16, embed_dim=8, settings=SETTINGS, seed=0):
    torch.manual_seed(seed)
    return METSModel(text_dim, embed_dim, settings, encoder={"widths": (8, 8, 16, 16)})


@pytest.mark.parametrize("leads,samples", [(12, 1000), (1, 37), (2, 301), (15, 4)])
def test_resnet1d_any_leads_and_length(leads, samples):
    net = ResNet1d(leads, widths=(8, 16, 16, 32)).eval()
    x = torch.randn(3, leads, samples)
    out = net(x)
    assert out.shape == (3, 32) and torch.isfinite(out).all()
    # a batch of one gives the same features as that row of the batch (eval mode)
    torch.testing.assert_close(net(x[1:2]), out[1:2], atol=1e-5, rtol=1e-5)


def test_resnet1d_is_resnet18_by_default():
    net = ResNet1d()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv1d) and m.kernel_size[0] > 1]
    assert len(convs) == 17  # the stem and 16 block convolutions: ResNet-18's 17 + fc
    assert convs[0].kernel_size == (15,) and {c.kernel_size for c in convs[1:]} == {(7,)}
    assert net.out_features == 512 and [c.out_channels for c in convs[1::4]] == [64, 128, 256, 512]


def test_resnet1d_bad_arguments():
    with pytest.raises(ValueError, match="odd"):
        ResNet1d(kernel=4)
    with pytest.raises(ValueError, match="one entry per stage"):
        ResNet1d(widths=(8, 16), blocks=(2, 2, 2))
    with pytest.raises(ValueError, match=r"expected \(N, 12, samples\)"):
        ResNet1d()(torch.zeros(2, 3, 100))


def test_model_encodings_are_normalised_and_the_loss_is_the_reference():
    model = small_model()
    ecg, text = torch.randn(6, 12, 1000), torch.randn(6, 16)
    e, t = model.encode_ecg(ecg), model.encode_text_embeddings(text)
    assert e.shape == (6, 8) and t.shape == (6, 8)
    torch.testing.assert_close(e.norm(dim=1), torch.ones(6))
    torch.testing.assert_close(t.norm(dim=1), torch.ones(6))
    loss = model(ecg, text)
    expected = reference_contrastive_loss(model.ecg_projection(model.encoder(ecg)),
                                          model.text_projection(text), model.logit_scale)
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)
    loss.backward()
    assert model.loss.log_scale.grad is not None and model.encoder.stem[0].weight.grad is not None
    assert float(model.logit_scale.detach()) == pytest.approx(1 / 0.07, rel=1e-6)


def test_embed_ecgs_matches_encode_in_eval_mode_and_restores_the_mode():
    model = small_model().train()
    ecg = np.random.default_rng(0).standard_normal((5, 12, 1000)).astype(np.float16)
    got = model.embed_ecgs(ecg, batch_size=2)
    assert model.training
    with torch.no_grad():
        expected = model.eval().encode_ecg(torch.from_numpy(ecg.astype(np.float32)))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"\(N, 12, 1000\)"):
        model.embed_ecgs(np.zeros((2, 12, 999), np.float32))


# ------------------------------------------------------------------------------- preprocess


def test_preprocess_equals_the_store_prepare_wrote(twelve_lead, tmp_path):
    """A record through model.preprocess equals what `prepare wfdb` stored for it (float16)."""
    path, _ = twelve_lead
    assert prepare_main(["wfdb", str(path), "--out", str(tmp_path / "s"), "--quiet"]) == 0
    store = ECGStore.open(tmp_path / "s")
    model = small_model(settings=Settings.from_dict(store.preprocessing))
    rec = read_record(path)
    got = model.preprocess(rec.signal, rec.fs, rec.leads)
    assert got.dtype == np.float32 and got.shape == (12, 1000)
    np.testing.assert_allclose(got, store.signals[0].astype(np.float32), atol=2e-3, rtol=2e-3)


def test_preprocess_reorders_leads_resamples_and_pads(make_ecg):
    x, _ = make_ecg(360, seconds=4, seed=3)
    leads = np.stack([x, -0.5 * x, 0.3 * x])
    names = ["V1", "MLII", "avr"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = prepare_recording(leads, 360, names, SETTINGS)
    missing = [str(w.message) for w in caught if "lacks" in str(w.message)]
    assert len(missing) == 1 and "'I'" in missing[0] and "'V6'" in missing[0]
    assert got.shape == (12, 1000)
    # by hand: resample, reorder, pad, clean, normalise
    from mets_fast.signal import resample

    low = resample(leads.astype(np.float64), 360, 100)
    order = np.zeros((12, low.shape[1]))
    order[1], order[3], order[6] = low[1], low[2], low[0]
    expected = preprocess(fit_length(order, 1000)[None], SETTINGS, lengths=[400])[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # the 4 s are normalised over themselves: the 6 s of padding stay zeros, out of the stats
    assert np.all(got[:, 400:] == 0)
    np.testing.assert_allclose(got[1, :400].std(), 1, rtol=1e-4)
    assert np.all(got[[0, 2, 4, 5, 7, 8, 9, 10, 11]] == 0)
    batch = prepare_recording(np.stack([leads, leads]), 360, names, SETTINGS)
    assert batch.shape == (2, 12, 1000)
    np.testing.assert_allclose(batch[1], got, atol=1e-6)


def test_a_long_recording_is_cropped_as_a_whole_record_resampling_crops_it(make_ecg):
    """prepare_recording resamples only the start it keeps; the samples equal those of the
    whole record resampled, then cropped (what the store's reader does)."""
    from mets_fast.signal import resample

    x, _ = make_ecg(1000, seconds=38, seed=4)
    signal = np.stack([x, 0.7 * x])
    got = prepare_recording(signal, 1000, ["I", "II"], SETTINGS._replace(leads=("I", "II")))
    whole = fit_length(resample(signal, 1000, 100), 1000)
    expected = preprocess(whole[None], SETTINGS._replace(leads=("I", "II")))[0]
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_preprocess_windows_and_bad_input(make_ecg):
    x, _ = make_ecg(100, seconds=25, seed=3)
    signal = np.stack([x] * 12)
    windows = prepare_recording(signal, 100, STANDARD_LEADS, SETTINGS, windows=True)
    assert windows.shape == (2, 12, 1000)  # 25 s: two whole windows, the last 5 s dropped
    np.testing.assert_allclose(
        windows[1], prepare_recording(signal[:, 1000:2000], 100, STANDARD_LEADS, SETTINGS),
        atol=1e-6)
    with pytest.raises(ValueError, match="share none"):
        prepare_recording(signal[:2], 100, ["X1", "X2"], SETTINGS)
    with pytest.raises(ValueError, match="3 leads but 2 lead names"):
        prepare_recording(signal[:3], 100, ["I", "II"], SETTINGS)
    with pytest.raises(ValueError, match=r"\(leads, samples\)"):
        prepare_recording(signal[0], 100, ["I"], SETTINGS)


# -------------------------------------------------------------------------- run directories


def _saved_run(tmp_path, model=None):
    model = model or small_model()
    run = tmp_path / "run"
    run.mkdir()
    checkpoint.write_config(run, model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 12, 1000), torch.randn(4, model.text_dim)).backward()
    optimizer.step()
    checkpoint.save_checkpoint(run, model, optimizer, epoch=1, step=1)
    return run, model, optimizer


def test_load_round_trip_and_encoder_only(tmp_path):
    run, model, _ = _saved_run(tmp_path)
    loaded = mets_fast.load(run)
    assert not loaded.training and loaded.settings == model.settings
    x = torch.randn(3, 12, 1000)
    model.eval()
    torch.testing.assert_close(loaded.encode_ecg(x), model.encode_ecg(x))
    encoder = mets_fast.load_encoder(run)
    assert isinstance(encoder, ResNet1d) and encoder.training
    head = torch.nn.Sequential(encoder, torch.nn.Linear(encoder.out_features, 5))
    assert head(x).shape == (3, 5)
    config = json.loads((run / "config.json").read_text())
    assert config["leads"] == list(STANDARD_LEADS) and config["samples"] == 1000
    assert config["model"]["embed_dim"] == 8 and config["model"]["preprocessing"]["fs"] == 100
    assert not [p for p in run.rglob("*") if ".tmp" in p.name]


def test_checkpoints_commit_whole_and_keep_only_the_last(tmp_path):
    run, model, optimizer = _saved_run(tmp_path)
    checkpoint.save_checkpoint(run, model, optimizer, epoch=2, step=2)
    assert [p.name for p in checkpoint.committed_checkpoints(run)] == ["epoch-0002"]
    # a half-written checkpoint (a hidden temporary directory) is never taken for one
    (run / "checkpoints" / ".epoch-0003.tmp-1").mkdir()
    assert [p.name for p in checkpoint.committed_checkpoints(run)] == ["epoch-0002"]
    fresh = small_model(seed=5)
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    state = checkpoint.restore_checkpoint(checkpoint.committed_checkpoints(run)[-1], fresh,
                                          fresh_opt)
    assert state["epoch"] == 2 and state["step"] == 2
    for a, b in zip(fresh.state_dict().values(), model.state_dict().values()):
        torch.testing.assert_close(a, b)
    restored, saved = fresh_opt.state_dict()["state"], optimizer.state_dict()["state"]
    assert sorted(restored) == sorted(saved)
    for index in saved:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            torch.testing.assert_close(restored[index][name], saved[index][name])
    damaged = checkpoint.committed_checkpoints(run)[-1] / "optimizer.safetensors"
    data = bytearray(damaged.read_bytes())
    data[-1] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged"):
        checkpoint.restore_checkpoint(damaged.parent, fresh, fresh_opt)


def test_load_refuses_what_is_not_a_good_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        mets_fast.load(tmp_path / "nothing")
    with pytest.raises(ValueError, match="not a mets_fast run directory"):
        mets_fast.load(tmp_path)
    run, _, _ = _saved_run(tmp_path)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "version": 99}))
    with pytest.raises(ValueError, match="newer mets_fast.*version 99"):
        mets_fast.load(run)
    (run / "config.json").write_text(json.dumps(config))
    weights = run / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated"):
        mets_fast.load(run)
    weights.unlink()
    with pytest.raises(ValueError, match="no model.safetensors"):
        mets_fast.load(run)


def test_text_encoder_rebuilt_from_the_config(tmp_path, tiny_lm):
    from mets_fast.text import FrozenTextEncoder

    encoder = FrozenTextEncoder(tiny_lm, cache_dir=tmp_path / "cache")
    text = {"model": str(tiny_lm), "identity": encoder.identity, "pooling": "mean",
            "template": encoder.template, "max_length": encoder.max_length, "dtype": "float32"}
    torch.manual_seed(0)
    model = METSModel(encoder.dim, 8, SETTINGS, encoder={"widths": (8, 8, 16, 16)}, text=text)
    run, _, _ = _saved_run(tmp_path, model)
    loaded = mets_fast.load(run)
    got = loaded.encode_texts(["sinus rhythm.", "atrial fibrillation."])
    expected = F.normalize(loaded.text_projection(torch.from_numpy(
        encoder.encode(["sinus rhythm.", "atrial fibrillation."]))), dim=-1)
    torch.testing.assert_close(got, expected)
    loaded.text_space = loaded.text_space._replace(identity="0" * 64)
    loaded._text_encoder = None
    with pytest.raises(ValueError, match="not the one this model was trained with"):
        loaded.text_encoder()


def test_the_lead_indicator_tells_a_missing_lead_from_a_quiet_one():
    torch.manual_seed(0)
    plain, told = ResNet1d(3, lead_indicator=False).eval(), ResNet1d(3, lead_indicator=True)
    told.eval()
    assert "lead_indicator" not in plain.config and told.config["lead_indicator"]
    assert told.stem[0].in_channels == 6 and plain.stem[0].in_channels == 3
    x = torch.randn(2, 3, 200)
    quiet, missing = x.clone(), x.clone()
    quiet[:, 1] = 1e-6
    missing[:, 1] = 0
    with torch.no_grad():
        gap_plain = (plain(quiet) - plain(missing)).abs().max()
        gap_told = (told(quiet) - told(missing)).abs().max()
    assert gap_told > 100 * gap_plain


def test_a_model_with_the_lead_indicator_is_rebuilt_from_its_config():
    model = METSModel(32, 16, encoder={"lead_indicator": True})
    again = METSModel.from_config(model.config)
    assert again.encoder.config == model.encoder.config
    before = {k: v for k, v in model.config["encoder_config"].items() if k != "lead_indicator"}
    old = dict(model.config, encoder_config=before)
    assert METSModel.from_config(old).encoder.stem[0].in_channels == 12
