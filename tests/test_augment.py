"""Batch augmentations: seeded, label preserving (gain, shape, rhythm and axis kept), missing
leads left zeros, odd shapes and extreme strengths, and the CLI's checks."""

import numpy as np
import pytest

from mets_fast.signal import detect_rpeaks
from mets_fast.training.augment import OFF, RECIPE, Augment, _shift, augment


def _batch(make_ecg, n=4, leads=3, fs=100.0, seconds=10.0):
    base = [make_ecg(fs, seconds=seconds, seed=s, noise=0.01, wander=0.0, powerline=0.0)[0]
            for s in range(n)]
    x = np.stack([np.stack([(1 + 0.3 * k) * b for k in range(leads)]) for b in base])
    return (x / x.std(-1, keepdims=True)).astype(np.float32)


def test_the_same_seed_draws_the_same_batch_and_another_does_not(make_ecg):
    x = _batch(make_ecg)
    a = augment(x, None, 100.0, RECIPE, np.random.default_rng([1, 2, 3, 0]))
    b = augment(x, None, 100.0, RECIPE, np.random.default_rng([1, 2, 3, 0]))
    c = augment(x, None, 100.0, RECIPE, np.random.default_rng([1, 2, 4, 0]))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.dtype == np.float32 and a.shape == x.shape and np.isfinite(a).all()


def test_off_changes_nothing_and_the_input_is_never_changed(make_ecg):
    x = _batch(make_ecg)
    before = x.copy()
    assert np.array_equal(augment(x, None, 100.0, OFF, np.random.default_rng(0)), x)
    augment(x, None, 100.0, RECIPE, np.random.default_rng(0))
    assert np.array_equal(x, before)


def test_gain_keeps_each_leads_shape_and_sign(make_ecg):
    x = _batch(make_ecg)
    y = augment(x, None, 100.0, Augment(scale=0.5), np.random.default_rng(0))
    ratio = y / x
    assert (ratio > 0).all()  # no polarity flip: the axis is kept
    np.testing.assert_allclose(ratio, ratio[..., :1].repeat(x.shape[-1], -1), rtol=1e-5)


def test_shift_moves_the_whole_window_and_fills_zeros(make_ecg):
    x = _batch(make_ecg, n=6)
    y = augment(x, None, 100.0, Augment(shift=2.0), np.random.default_rng(3))
    found = []
    for i in range(len(x)):
        matches = [s for s in range(-200, 201)
                   if np.array_equal(y[i], _shift(x[i:i + 1], np.array([s]))[0])]
        assert matches, f"ECG {i} is not a shift of the original"
        found.append(matches[0])
    assert len(set(found)) > 1 and max(abs(s) for s in found) <= 200


@pytest.mark.parametrize("name,band", [("wander", (0.0, 0.6)), ("powerline", (39.0, 50.1))])
def test_additive_disturbances_stay_in_their_band(make_ecg, name, band):
    x = _batch(make_ecg)
    y = augment(x, None, 100.0, Augment(**{name: 0.5}), np.random.default_rng(5))
    residual = (y - x).astype(np.float64)
    power = np.abs(np.fft.rfft(residual, axis=-1)) ** 2
    freqs = np.fft.rfftfreq(x.shape[-1], 1 / 100.0)
    inside = (freqs >= band[0]) & (freqs <= band[1])
    assert power[..., inside].sum() >= 0.95 * power.sum()


def test_the_recipe_keeps_the_heart_rate(make_ecg):
    x = _batch(make_ecg, n=3, leads=1, fs=250.0)
    y = augment(x, None, 250.0, RECIPE._replace(shift=0.0), np.random.default_rng(2))
    for before, after in zip(x[:, 0], y[:, 0]):
        rr_a = np.median(np.diff(detect_rpeaks(before.astype(np.float64), 250.0)))
        rr_b = np.median(np.diff(detect_rpeaks(after.astype(np.float64), 250.0)))
        assert abs(rr_a - rr_b) <= 0.02 * rr_a


def test_missing_leads_stay_zeros(make_ecg):
    x = _batch(make_ecg)
    mask = np.ones(x.shape[:2], bool)
    mask[0, 1] = mask[2, 0] = False
    x[~mask] = 0
    y = augment(x, mask, 100.0, RECIPE._replace(leads=0.0), np.random.default_rng(0))
    assert (y[~mask] == 0).all() and (y[mask] != 0).any(-1).all()


def test_lead_subsets_keep_one_to_all_of_the_leads_an_ecg_has():
    n, leads = 2000, 12
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, leads, 20)).astype(np.float32)
    mask = rng.random((n, leads)) < 0.9
    mask[0] = False  # an ECG with no lead at all stays so
    x[~mask] = 0
    y = augment(x, mask, 100.0, Augment(leads=1.0), np.random.default_rng(1))
    kept = (y != 0).any(-1)
    assert not (kept & ~mask).any()  # never brings a missing lead back
    assert (kept.sum(1)[1:] >= 1).all() and not kept[0].any()
    sizes = kept.sum(1)[1:]
    assert sizes.min() == 1 and sizes.max() == leads
    np.testing.assert_array_equal(y[kept], x[kept])  # kept leads untouched
    single = kept[sizes.argmin() + 1]
    assert single.sum() == 1
    half = augment(x, mask, 100.0, Augment(leads=0.5), np.random.default_rng(2))
    untouched = ((half != 0).any(-1) == mask).all(1).mean()
    assert 0.5 <= untouched <= 0.65  # half keep all; a subset may also be all of them


@pytest.mark.parametrize("shape", [(1, 1, 7), (2, 12, 1), (3, 2, 33)])
def test_odd_shapes_and_a_shift_longer_than_the_window(shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    y = augment(x, None, 100.0, RECIPE._replace(shift=100.0), np.random.default_rng(1))
    assert y.shape == x.shape and np.isfinite(y).all()


@pytest.mark.parametrize("bad,phrase", [
    (Augment(noise=-0.1), "--aug-noise must be a finite number >= 0"),
    (Augment(shift=float("nan")), "--aug-shift must be a finite number"),
    (Augment(scale=50.0), "use at most 5"),
    (Augment(leads=1.5), "--aug-leads is a probability"),
    (Augment(noise=1e9), "--aug-noise 1e\\+09 is in lead standard deviations"),
    (Augment(powerline=1e30), "--aug-powerline 1e\\+30 is in lead standard deviations"),
    (Augment(wander=10.5), "above 10 the ECG drowns"),
    (Augment(shift=100.0), "would shift the whole 10 s window out"),
    (Augment(shift=10.0), "give less than 10"),
])
def test_bad_strengths_are_refused_naming_the_flag(bad, phrase):
    with pytest.raises(ValueError, match=phrase.replace("(", r"\(")):
        bad.check(seconds=10.0)
    assert Augment(noise=10.0, shift=9.9).check(seconds=10.0)  # the bounds themselves pass


def test_the_cli_refuses_a_shift_longer_than_the_window(capsys, tiny_lm, tmp_path):
    from mets_fast.train import main

    assert main(["--aug-shift", "100", "--preset", "smoke", "--corpus-size", "160", "--quiet",
                 "--lm", str(tiny_lm), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "--aug-shift 100 s would shift the whole 10 s window out" in err
    assert not (tmp_path / "r").exists()


def test_the_cli_refuses_a_negative_strength(capsys):
    from mets_fast.train import main

    assert main(["--aug-wander", "-1", "--preset", "smoke", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--aug-wander must be a finite number >= 0" in err and err.count("\n") == 1
