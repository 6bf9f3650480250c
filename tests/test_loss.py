"""The fused loss kernels against the plain PyTorch references (float64 ground truth)."""

import math

import numpy as np
import pytest
import torch

import mets_fast
from mets_fast import _C
from mets_fast.loss import (
    ContrastiveLoss,
    backends,
    contrastive_loss,
    infonce,
    normalized_similarity,
    reference_contrastive_loss,
    reference_infonce,
)


def _grads(fn, a, b, s, **kw):
    """Loss and gradients (a, b, s) of fn, on fresh leaves."""
    a = a.detach().clone().requires_grad_(True)
    b = b.detach().clone().requires_grad_(True)
    s = torch.tensor(float(s), dtype=torch.float64, requires_grad=True)
    loss = fn(a, b, s, **kw)
    loss.backward()
    return loss.detach(), a.grad, b.grad, s.grad


def _assert_close(ours, ref, rtol, atol, inputs=None, scale=1.0):
    """Max-norm comparison.  With `inputs`, gradient rows are compared times their input row's
    norm: the normalisation divides them by that norm, so a short row's gradient is large, and its
    rounding error is relative to s (the size of the gradient before the projection)."""
    for k, (name, x, y) in enumerate(zip(("loss", "d_a", "d_b", "d_scale"), ours, ref)):
        x, y = x.detach().cpu().double(), y.detach().cpu().double()
        bound = atol + rtol * y.abs().max().item()
        if inputs is not None and k in (1, 2):
            norm = inputs[k - 1].detach().cpu().double().norm(dim=1, keepdim=True).clamp_min(1e-12)
            x, y = x * norm, y * norm
            bound = atol * scale + rtol * y.abs().max().item()
        err = (x - y).abs().max().item()
        assert err <= bound, f"{name}: max error {err:.3g} > {bound:.3g}"


def _inputs(rows, cols, dim, seed, dtype=torch.float32, transposed=False, extreme=False):
    g = torch.Generator().manual_seed(seed)
    if transposed:
        a = torch.randn(dim, rows, generator=g, dtype=torch.float64).T
        b = torch.randn(dim, cols, generator=g, dtype=torch.float64).T
    else:
        a = torch.randn(rows, dim, generator=g, dtype=torch.float64)
        b = torch.randn(cols, dim, generator=g, dtype=torch.float64)
    if extreme:
        # rows of norm about 1e-6 and 1e4 among ordinary ones
        a[::3] *= 1e-6 / math.sqrt(dim)
        b[1::3] *= 1e4 / math.sqrt(dim)
    return a.to(dtype), b.to(dtype)


@pytest.fixture(params=["kept", "recomputed"])
def logits_path(request, monkeypatch):
    """Runs a test with small logits kept between the CPU passes (the default) and recomputed
    in backward (the path of large batches)."""
    if request.param == "recomputed":
        monkeypatch.setattr(mets_fast.loss, "SAVED_LOGITS_MAX", 0)
    return request.param


def _check_symmetric(a, b, s, rtol, atol, normalize=True, groups=None):
    ours = _grads(contrastive_loss, a, b, s, normalize=normalize, groups=groups)
    ref = _grads(reference_contrastive_loss, a.double(), b.double(), s, normalize=normalize,
                 groups=groups)
    _assert_close(ours, ref, rtol, atol, (a, b) if normalize else None, s)


@pytest.mark.parametrize("batch", [1, 2, 3, 17, 129, 1000])
@pytest.mark.parametrize("dim", [1, 7, 128, 257])
def test_symmetric_matches_reference_float32(batch, dim, logits_path):
    for seed, scale in enumerate([1.0, 14.3, 100.0]):
        a, b = _inputs(batch, batch, dim, seed)
        _check_symmetric(a, b, scale, rtol=2e-4, atol=2e-6)


@pytest.mark.parametrize("batch,dim", [(1, 1), (3, 7), (129, 257), (1000, 128)])
@pytest.mark.parametrize("scale", [1.0, 14.3, 100.0])
def test_symmetric_matches_reference_float64(batch, dim, scale, logits_path):
    a, b = _inputs(batch, batch, dim, seed=batch, dtype=torch.float64)
    _check_symmetric(a, b, scale, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("transposed", [False, True])
def test_extreme_norms_and_transposed_inputs(seed, transposed, logits_path):
    a, b = _inputs(129, 129, 33, seed, transposed=transposed, extreme=True)
    assert not a.is_contiguous() or not transposed
    for scale in (1.0, 100.0):
        _check_symmetric(a, b, scale, rtol=2e-4, atol=2e-6)


def test_without_normalisation(logits_path):
    a, b = _inputs(65, 65, 16, seed=3)
    _check_symmetric(a * 0.3, b * 0.3, 2.0, rtol=2e-4, atol=2e-6, normalize=False)


@pytest.mark.parametrize(
    "rows,cols,offset", [(1, 1, 0), (1, 9, 8), (3, 10, 7), (17, 129, 50), (129, 129, 0),
                         (100, 1000, 900)]
)
@pytest.mark.parametrize("dim", [1, 7, 128, 257])
def test_infonce_matches_reference(rows, cols, offset, dim, logits_path):
    for seed, scale in enumerate([1.0, 14.3, 100.0]):
        a, b = _inputs(rows, cols, dim, seed)
        ours = _grads(infonce, a, b, scale, offset=offset)
        ref = _grads(reference_infonce, a.double(), b.double(), scale, offset=offset)
        _assert_close(ours, ref, rtol=2e-4, atol=2e-6, inputs=(a, b), scale=scale)


def test_symmetric_loss_is_two_infonce_halves():
    a, b = _inputs(40, 40, 12, seed=5)
    both = contrastive_loss(a, b, 7.0)
    halves = (infonce(a, b, 7.0) + infonce(b, a, 7.0)) / 2
    torch.testing.assert_close(both, halves, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("rows,cols,dim", [(1, 1, 1), (5, 300, 7), (129, 17, 257)])
def test_similarity_matches_reference(rows, cols, dim):
    a, b = _inputs(rows, cols, dim, seed=rows, extreme=True)

    def ref(x, y, s):
        return s * torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(y, dim=1).T

    weights = torch.randn(rows, cols, dtype=torch.float64)
    ours = _grads(lambda x, y, s: (normalized_similarity(x, y, s) * weights.float()).sum(), a, b, 3.0)
    expected = _grads(lambda x, y, s: (ref(x, y, s) * weights).sum(), a.double(), b.double(), 3.0)
    _assert_close(ours, expected, rtol=2e-4, atol=1e-5, inputs=(a, b), scale=3.0 * max(rows, cols))
    torch.testing.assert_close(normalized_similarity(a, b, 3.0).double(), ref(a.double(), b.double(), 3.0),
                               rtol=1e-5, atol=1e-5)


def test_gradcheck_float64(logits_path):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 5, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(6, 5, dtype=torch.float64, generator=g, requires_grad=True)
    c = torch.randn(9, 5, dtype=torch.float64, generator=g, requires_grad=True)
    s = torch.tensor(4.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y, t: contrastive_loss(x, y, t), (a, b, s))
    assert torch.autograd.gradcheck(
        lambda x, y, t: contrastive_loss(x, y, t, normalize=False), (a, b, s))
    assert torch.autograd.gradcheck(lambda x, y, t: infonce(x, y, t, offset=2), (a, c, s))
    assert torch.autograd.gradcheck(lambda x, y, t: normalized_similarity(x, y, t), (a, c, s))
    # second derivatives are not provided: the backward is itself a kernel, and says so
    with pytest.raises(RuntimeError, match="no second derivative"):
        torch.autograd.gradgradcheck(lambda x, y, t: contrastive_loss(x, y, t), (a, b, s))
    for loss in (contrastive_loss(a, b, s), normalized_similarity(a, c, s).sum()):
        with pytest.raises(RuntimeError, match="create_graph=True"):
            loss.backward(create_graph=True)


@pytest.mark.parametrize("value", [[[1.0, 2.0]], np.ones((1, 2)), (1.0, 2.0)])
def test_non_tensors_get_a_type_error_everywhere(value):
    for call in (lambda: contrastive_loss(value, torch.ones(1, 2), 1.0),
                 lambda: ContrastiveLoss()(value, torch.ones(1, 2)),
                 lambda: normalized_similarity(torch.ones(1, 2), value)):
        with pytest.raises(TypeError, match="must be a torch.Tensor"):
            call()


def test_zero_rows_give_finite_gradients(logits_path):
    a, b = _inputs(10, 10, 8, seed=7)
    a[3] = 0
    b[0] = 0
    ours = _grads(contrastive_loss, a, b, 14.3)
    ref = _grads(reference_contrastive_loss, a.double(), b.double(), 14.3)
    assert all(torch.isfinite(t).all() for t in ours)
    _assert_close(ours, ref, rtol=2e-4, atol=2e-6, inputs=(a, b), scale=14.3)


@pytest.mark.parametrize("rows,cols,offset", [(1, 1, 0), (129, 129, 0), (100, 1000, 900)])
def test_kept_and_recomputed_logits_give_identical_gradients(rows, cols, offset, monkeypatch):
    a, b = _inputs(rows, cols, 33, seed=rows)
    kept = _grads(infonce, a, b, 14.3, offset=offset), _grads(contrastive_loss, a, a, 14.3)
    monkeypatch.setattr(mets_fast.loss, "SAVED_LOGITS_MAX", 0)
    recomputed = _grads(infonce, a, b, 14.3, offset=offset), _grads(contrastive_loss, a, a, 14.3)
    for x, y in zip(kept, recomputed):
        assert all(torch.equal(u, v) for u, v in zip(x, y))


@pytest.fixture(params=_C.available_isas())
def isa(request):
    previous = _C.isa()
    _C.set_isa(request.param)
    yield request.param
    _C.set_isa(previous)


@pytest.mark.parametrize("batch,dim", [(1, 3), (33, 7), (257, 130)])
def test_every_instruction_set(isa, batch, dim, logits_path):
    for dtype, rtol, atol in ((torch.float32, 2e-4, 2e-6), (torch.float64, 1e-10, 1e-12)):
        a, b = _inputs(batch, batch, dim, seed=11, dtype=dtype, extreme=True)
        _check_symmetric(a, b, 30.0, rtol, atol)
        ours = _grads(infonce, a[: batch // 2 + 1], b, 30.0, offset=batch // 3)
        ref = _grads(reference_infonce, a[: batch // 2 + 1].double(), b.double(), 30.0,
                     offset=batch // 3)
        _assert_close(ours, ref, rtol, atol, inputs=(a[: batch // 2 + 1], b), scale=30.0)


# ---------------------------------------------------------------------------------------------
# Report groups: pairs of one report other than the positive are left out of both softmaxes
# ---------------------------------------------------------------------------------------------


def _groups(n, distinct, seed):
    """n report ids drawn from `distinct` values (ids far apart and negative ones included)."""
    g = torch.Generator().manual_seed(seed)
    values = torch.randperm(10 * distinct + 10, generator=g)[:distinct] * 7919 - 3 * distinct
    return values[torch.randint(0, distinct, (n,), generator=g)]


@pytest.mark.parametrize("batch", [1, 2, 3, 17, 129, 1000])
@pytest.mark.parametrize("dim", [1, 7, 257])
def test_groups_match_reference_float32(batch, dim, logits_path):
    for seed, (scale, distinct) in enumerate([(1.0, 2), (14.3, max(batch // 3, 1)),
                                              (100.0, max(batch - 1, 1))]):
        a, b = _inputs(batch, batch, dim, seed)
        _check_symmetric(a, b, scale, rtol=2e-4, atol=2e-6, groups=_groups(batch, distinct, seed))


@pytest.mark.parametrize("batch,dim", [(3, 7), (129, 257), (1000, 128)])
@pytest.mark.parametrize("scale", [1.0, 14.3, 100.0, 400.0])
def test_groups_match_reference_float64(batch, dim, scale, logits_path):
    """400 is past float64's fixed shift: the running-maximum path of the kernels."""
    a, b = _inputs(batch, batch, dim, seed=batch, dtype=torch.float64)
    for distinct in (1, 2, batch // 4 + 1):
        _check_symmetric(a, b, scale, rtol=1e-10, atol=1e-12, groups=_groups(batch, distinct, 1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_groups_with_extreme_norms_and_without_normalisation(seed, logits_path):
    a, b = _inputs(129, 129, 33, seed, extreme=True)
    groups = _groups(129, 20, seed)
    for scale in (1.0, 100.0):
        _check_symmetric(a, b, scale, rtol=2e-4, atol=2e-6, groups=groups)
    a, b = _inputs(65, 65, 16, seed)
    _check_symmetric(a * 0.3, b * 0.3, 2.0, rtol=2e-4, atol=2e-6, normalize=False,
                     groups=groups[:65])


@pytest.mark.parametrize("batch", [1, 5, 130, 1100])
def test_one_group_leaves_only_the_positives(batch, logits_path):
    """Every row and column then has only its positive: the loss and all gradients are 0."""
    a, b = _inputs(batch, batch, 9, seed=batch)
    loss, da, db, ds = _grads(contrastive_loss, a, b, 14.3, groups=torch.full((batch,), 7))
    assert abs(float(loss)) < 1e-6
    for g in (da, db, ds):
        assert float(g.abs().max()) < 1e-6


@pytest.mark.parametrize("batch", [1, 17, 1100])
def test_distinct_groups_are_clips_loss_bit_for_bit(batch, logits_path):
    a, b = _inputs(batch, batch, 33, seed=3)
    plain = _grads(contrastive_loss, a, b, 14.3)
    # ids 2**40 + k differ by less than float32 resolves: the kernels must still tell them apart
    grouped = _grads(contrastive_loss, a, b, 14.3, groups=torch.arange(batch) + 2**40)
    assert all(torch.equal(x, y) for x, y in zip(plain, grouped))
    rows = max(batch // 2, 1)
    plain = _grads(infonce, a[:rows], b, 14.3, offset=batch - rows)
    grouped = _grads(infonce, a[:rows], b, 14.3, offset=batch - rows,
                     row_groups=np.arange(batch - rows, batch), col_groups=np.arange(batch))
    assert all(torch.equal(x, y) for x, y in zip(plain, grouped))


@pytest.mark.parametrize("rows,cols,offset", [(1, 9, 8), (3, 10, 7), (17, 129, 50),
                                              (100, 1000, 900)])
@pytest.mark.parametrize("dim", [1, 128])
def test_groups_in_infonce_match_reference(rows, cols, offset, dim, logits_path):
    for seed, scale in enumerate([1.0, 14.3, 100.0]):
        a, b = _inputs(rows, cols, dim, seed)
        col_groups = _groups(cols, max(cols // 4, 1), seed)
        # a row's own id need not equal its positive column's: the positive always counts
        row_groups = col_groups[offset:offset + rows].clone()
        row_groups[::2] = _groups(rows, 3, seed + 1)[::2]
        kw = dict(offset=offset, row_groups=row_groups, col_groups=col_groups)
        ours = _grads(infonce, a, b, scale, **kw)
        ref = _grads(reference_infonce, a.double(), b.double(), scale, **kw)
        _assert_close(ours, ref, rtol=2e-4, atol=2e-6, inputs=(a, b), scale=scale)


def test_distributed_form_with_groups_is_the_global_loss():
    """What each of 4 ranks computes (its rows against the gathered batch, both directions),
    averaged as DDP does, equals the symmetric loss of the global batch, gradients included."""
    world, local = 4, 9
    a, b = _inputs(world * local, world * local, 16, seed=8, dtype=torch.float64)
    groups = _groups(world * local, 6, 8)

    def per_rank(x, y, s):
        total = 0
        for r in range(world):
            part = slice(r * local, (r + 1) * local)
            kw = dict(offset=r * local, row_groups=groups[part], col_groups=groups)
            total = total + (infonce(x[part], y, s, **kw) + infonce(y[part], x, s, **kw)) / 2
        return total / world

    _assert_close(_grads(per_rank, a, b, 14.3),
                  _grads(reference_contrastive_loss, a, b, 14.3, groups=groups),
                  rtol=1e-10, atol=1e-12)


def test_groups_on_every_instruction_set(isa, logits_path):
    for dtype, rtol, atol in ((torch.float32, 2e-4, 2e-6), (torch.float64, 1e-10, 1e-12)):
        a, b = _inputs(257, 257, 130, seed=11, dtype=dtype, extreme=True)
        _check_symmetric(a, b, 30.0, rtol, atol, groups=_groups(257, 40, 2))


def test_gradcheck_with_groups(logits_path):
    g = torch.Generator().manual_seed(1)
    a = torch.randn(7, 5, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(7, 5, dtype=torch.float64, generator=g, requires_grad=True)
    s = torch.tensor(4.0, dtype=torch.float64, requires_grad=True)
    groups = torch.tensor([0, 1, 0, 2, 1, 0, 3])
    assert torch.autograd.gradcheck(lambda x, y, t: contrastive_loss(x, y, t, groups=groups),
                                    (a, b, s))
    assert torch.autograd.gradcheck(
        lambda x, y, t: infonce(x[:3], y, t, offset=4, row_groups=groups[4:],
                                col_groups=groups), (a, b, s))


def test_contrastive_loss_module_passes_groups():
    module = ContrastiveLoss()
    a, b = _inputs(12, 12, 8, seed=2)
    groups = _groups(12, 3, 2)
    torch.testing.assert_close(
        module(a, b, groups),
        reference_contrastive_loss(a, b, module.logit_scale, groups=groups))


@pytest.mark.parametrize(
    "call,error,message",
    [
        (lambda: contrastive_loss(torch.randn(3, 4), torch.randn(3, 4), 1.0, groups=[0, 1]),
         ValueError, r"groups must have shape \(3,\)"),
        (lambda: contrastive_loss(torch.randn(3, 4), torch.randn(3, 4), 1.0,
                                  groups=torch.zeros(3, 1, dtype=torch.long)),
         ValueError, "one id per row"),
        (lambda: contrastive_loss(torch.randn(3, 4), torch.randn(3, 4), 1.0,
                                  groups=torch.zeros(3)), TypeError, "integers"),
        (lambda: contrastive_loss(torch.randn(3, 4), torch.randn(3, 4), 1.0,
                                  groups=np.array(["a", "b", "c"])), TypeError, "integers"),
        (lambda: contrastive_loss(torch.randn(3, 4), torch.randn(3, 4), 1.0,
                                  groups=torch.ones(3, dtype=torch.bool)), TypeError, "integers"),
        (lambda: infonce(torch.randn(2, 4), torch.randn(3, 4), 1.0, row_groups=[0, 1]),
         ValueError, "both or neither"),
        (lambda: reference_infonce(torch.randn(2, 4), torch.randn(3, 4), 1.0,
                                   col_groups=[0, 1, 2]), ValueError, "both or neither"),
        (lambda: infonce(torch.randn(2, 4), torch.randn(3, 4), 1.0, row_groups=[0, 1],
                         col_groups=[0, 1]), ValueError, r"col_groups must have shape \(3,\)"),
    ],
)
def test_bad_groups(call, error, message):
    with pytest.raises(error, match=message):
        call()


def _run(threads, a, b):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _grads(contrastive_loss, a, b, 14.3)
    finally:
        torch.set_num_threads(previous)


def test_deterministic_for_a_thread_count_and_close_across_counts():
    a, b = _inputs(1000, 1000, 128, seed=13)
    one = _run(1, a, b)
    assert all(torch.equal(x, y) for x, y in zip(one, _run(1, a, b)))
    two = _run(2, a, b)
    assert all(torch.equal(x, y) for x, y in zip(two, _run(2, a, b)))
    for x, y in zip(one, two):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-6 * y.abs().max().item())


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: contrastive_loss(torch.randn(3), torch.randn(3), 1.0), "2-d"),
        (lambda: contrastive_loss(torch.randn(3, 4), torch.randn(3, 5), 1.0), "same width"),
        (lambda: contrastive_loss(torch.randn(3, 4), torch.randn(4, 4), 1.0), "same batch size"),
        (lambda: contrastive_loss(torch.randn(0, 4), torch.randn(0, 4), 1.0), "empty"),
        (lambda: infonce(torch.randn(5, 4), torch.randn(3, 4), 1.0), "outnumber"),
        (lambda: infonce(torch.randn(2, 4), torch.randn(3, 4), 1.0, offset=2), "offset"),
        (lambda: infonce(torch.randn(2, 4), torch.randn(3, 4), 1.0, offset=-1), "offset"),
        (lambda: contrastive_loss(torch.randn(3, 4), torch.randn(3, 4), -1.0), "positive"),
        (lambda: contrastive_loss(torch.randn(3, 4), torch.randn(3, 4), float("nan")), "positive"),
        (lambda: contrastive_loss(torch.randn(3, 4), torch.randn(3, 4), torch.ones(2)), "scalar"),
        (lambda: contrastive_loss(torch.tensor([[1.0, float("nan")]]), torch.ones(1, 2), 1.0),
         "1 non-finite"),
        (lambda: contrastive_loss(torch.ones(1, 2), torch.tensor([[float("inf"), 1.0]]), 1.0),
         "text_emb holds 1 non-finite"),
        (lambda: normalized_similarity(torch.randn(2, 3), torch.randn(2, 3, 1)), "2-d"),
    ],
)
def test_bad_input_raises_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: contrastive_loss(torch.randn(3, 4).half(), torch.randn(3, 4).half(), 1.0),
         "float32 or float64"),
        (lambda: contrastive_loss(torch.randn(3, 4), torch.randn(3, 4).double(), 1.0), "one dtype"),
        (lambda: contrastive_loss([[1.0]], torch.randn(1, 1), 1.0), "torch.Tensor"),
        (lambda: contrastive_loss(torch.randn(1, 1), torch.randn(1, 1), "1"), "logit_scale"),
        (lambda: infonce(torch.randn(1, 1), torch.randn(2, 1), 1.0, offset=1.0), "offset"),
    ],
)
def test_bad_input_raises_type_error(call, message):
    with pytest.raises(TypeError, match=message):
        call()


def test_contrastive_loss_module_owns_the_scale():
    module = ContrastiveLoss()
    assert module.temperature == pytest.approx(0.07)
    assert float(module.logit_scale.detach()) == pytest.approx(1 / 0.07)
    a, b = _inputs(16, 16, 8, seed=2)
    loss = module(a, b)
    torch.testing.assert_close(loss, reference_contrastive_loss(a, b, module.logit_scale))
    loss.backward()
    assert module.log_scale.grad is not None
    with torch.no_grad():
        module.log_scale.fill_(10.0)
    module.clamp_()
    assert float(module.logit_scale.detach()) == pytest.approx(100.0)
    with torch.no_grad():
        module.log_scale.fill_(-3.0)
    assert float(module.clamp_().logit_scale.detach()) == pytest.approx(1.0)
    fixed = ContrastiveLoss(init_temperature=0.5, learnable=False)
    assert not list(fixed.parameters()) and "log_scale" in dict(fixed.named_buffers())
    with pytest.raises(ValueError, match="init_temperature"):
        ContrastiveLoss(init_temperature=0.0)
    with pytest.raises(ValueError, match="exceeds"):
        ContrastiveLoss(init_temperature=0.001)


def test_backends_report():
    info = backends()
    assert {"cpu", "cpu_isa", "openmp", "cuda_built", "cuda_available"} <= set(info)
    assert info["cpu_isa"] in ("avx512", "avx2", "portable")
    assert mets_fast.backends() == info
    if not torch.cuda.is_available():
        assert info["cuda_available"] is False


def test_set_isa_rejects_unknown():
    with pytest.raises(ValueError, match="not available"):
        _C.set_isa("sse9")


needs_cuda = pytest.mark.skipif(
    not backends()["cuda_available"], reason="no CUDA device (or mets_fast built without CUDA)"
)


@needs_cuda
@pytest.mark.parametrize("batch,dim", [(1, 1), (3, 7), (129, 257), (1000, 128), (4096, 256),
                                       (32768, 128)])
def test_cuda_matches_reference(batch, dim):
    torch.backends.cuda.matmul.allow_tf32 = False
    a, b = _inputs(batch, batch, dim, seed=batch, extreme=batch < 5000)
    for scale in (1.0, 14.3, 100.0):
        ours = _grads(contrastive_loss, a.cuda(), b.cuda(), scale)
        ref = _grads(reference_contrastive_loss, a.double().cuda(), b.double().cuda(), scale)
        _assert_close(ours, ref, rtol=5e-4, atol=5e-6, inputs=(a, b), scale=scale)
        ours = _grads(infonce, a[: batch // 2 + 1].cuda(), b.cuda(), scale, offset=batch // 3)
        ref = _grads(reference_infonce, a[: batch // 2 + 1].double().cuda(), b.double().cuda(),
                     scale, offset=batch // 3)
        _assert_close(ours, ref, rtol=5e-4, atol=5e-6, inputs=(a[: batch // 2 + 1], b),
                      scale=scale)


@needs_cuda
@pytest.mark.parametrize("batch,dim", [(1, 1), (3, 7), (129, 257), (4096, 128)])
def test_cuda_groups_match_reference(batch, dim):
    a, b = _inputs(batch, batch, dim, seed=batch)
    for scale, distinct in ((1.0, 1), (14.3, batch // 3 + 1), (100.0, batch)):
        groups = _groups(batch, distinct, batch)
        ours = _grads(contrastive_loss, a.cuda(), b.cuda(), scale, groups=groups.cuda())
        ref = _grads(reference_contrastive_loss, a.double(), b.double(), scale, groups=groups)
        _assert_close(ours, ref, rtol=5e-4, atol=5e-6, inputs=(a, b), scale=scale)
        rows, offset = batch // 2 + 1, batch // 3
        kw = dict(offset=offset, row_groups=groups[offset:offset + rows], col_groups=groups)
        ours = _grads(infonce, a[:rows].cuda(), b.cuda(), scale,
                      **{k: v.cuda() if torch.is_tensor(v) else v for k, v in kw.items()})
        ref = _grads(reference_infonce, a[:rows].double(), b.double(), scale, **kw)
        _assert_close(ours, ref, rtol=5e-4, atol=5e-6, inputs=(a[:rows], b), scale=scale)


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_half_precision(dtype):
    a, b = _inputs(512, 512, 64, seed=1)
    ours = _grads(contrastive_loss, a.to(dtype).cuda(), b.to(dtype).cuda(), 14.3)
    ref = _grads(reference_contrastive_loss, a.to(dtype).double().cuda(),
                 b.to(dtype).double().cuda(), 14.3)
    _assert_close(ours, ref, rtol=2e-2, atol=1e-4, inputs=(a, b), scale=14.3)


@needs_cuda
def test_cuda_similarity_and_determinism():
    a, b = _inputs(300, 700, 65, seed=4)
    weights = torch.randn(300, 700, dtype=torch.float64)
    ours = _grads(lambda x, y, s: (normalized_similarity(x, y, s) * weights.float().cuda()).sum(),
                  a.cuda(), b.cuda(), 2.0)
    again = _grads(lambda x, y, s: (normalized_similarity(x, y, s) * weights.float().cuda()).sum(),
                   a.cuda(), b.cuda(), 2.0)
    assert all(torch.equal(x, y) for x, y in zip(ours, again))
    ref = _grads(lambda x, y, s: (s * torch.nn.functional.normalize(x, dim=1)
                                  @ torch.nn.functional.normalize(y, dim=1).T * weights).sum(),
                 a.double(), b.double(), 2.0)
    _assert_close(ours, ref, rtol=5e-4, atol=1e-5, inputs=(a, b), scale=2.0 * 700)


def test_torch_compile_traces_through_the_kernels_without_a_graph_break():
    """fullgraph=True: the fused loss and similarity are torch operators, so the compiled model
    is one graph, and its values and gradients are eager's."""
    torch.manual_seed(0)

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ecg, self.text = torch.nn.Linear(12, 8), torch.nn.Linear(6, 8)
            self.criterion = ContrastiveLoss()

        def forward(self, x, t, classes):
            e, y = self.ecg(x), self.text(t)
            scores = normalized_similarity(e, self.text(classes), self.criterion.logit_scale)
            return self.criterion(e, y) + 0.1 * scores.logsumexp(1).mean() \
                + 0.5 * infonce(e[:3], y, self.criterion.logit_scale, offset=2)

    x, t, classes = torch.randn(7, 12), torch.randn(7, 6), torch.randn(4, 6)
    model = Tiny()
    eager = model(x, t, classes)
    eager.backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    got = compiled(x, t, classes)
    got.backward()
    torch.testing.assert_close(got, eager)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, want[n], msg=n)
    with pytest.raises(Exception, match="non-finite"):
        compiled(torch.full((7, 12), float("nan")), t, classes)


def test_torch_compile_traces_through_the_loss_with_groups():
    torch.manual_seed(1)
    criterion = ContrastiveLoss()
    ecg, text = torch.nn.Linear(12, 8), torch.nn.Linear(6, 8)

    def step(x, t, groups):
        e, y = ecg(x), text(t)
        return criterion(e, y, groups) + infonce(e[:3], y, criterion.logit_scale, offset=2,
                                                  row_groups=groups[2:5], col_groups=groups)

    x, t, groups = torch.randn(7, 12), torch.randn(7, 6), torch.tensor([4, 1, 4, 4, 2, 1, 9])
    params = [*ecg.parameters(), *text.parameters(), criterion.log_scale]
    eager = step(x, t, groups)
    want = torch.autograd.grad(eager, params)
    got = torch.compile(step, fullgraph=True, backend="aot_eager")(x, t, groups)
    torch.testing.assert_close(got, eager)
    for g, w in zip(torch.autograd.grad(got, params), want):
        torch.testing.assert_close(g, w)
