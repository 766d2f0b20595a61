"""FWI misfits: values, additivity over shots, scale invariance, zero-trace safety, gradients."""
import pytest
import torch

from sweep.fwi.losses import MISFITS, get_misfit, l2, normalized_l2


def _pair(shape=(4, 30, 5, 2), seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=dtype), torch.randn(shape, generator=g, dtype=dtype))


def test_l2_matches_hand_computation():
    p, o = _pair()
    expected = 0.0
    for a, b in zip(p.flatten().tolist(), o.flatten().tolist()):
        expected += 0.5 * (a - b) ** 2
    assert l2(p, o).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", sorted(MISFITS))
def test_misfits_add_up_over_shot_subsets(name):
    p, o = _pair(seed=1)
    p[1, :, 2] = 0  # a zero trace must not couple the shots either
    misfit = get_misfit(name)
    whole = misfit(p, o).item()
    parts = misfit(p[:2], o[:2]).item() + misfit(p[2:], o[2:]).item()
    assert parts == pytest.approx(whole, rel=1e-12, abs=1e-12)


def test_normalized_l2_ignores_positive_trace_scale():
    p, o = _pair(seed=2)
    scale = torch.rand(p.shape[0], 1, p.shape[2], p.shape[3], dtype=p.dtype) * 100 + 0.01
    assert normalized_l2(p * scale, o).item() == pytest.approx(normalized_l2(p, o).item(), rel=1e-12)
    assert normalized_l2(p, o).item() == pytest.approx(normalized_l2(p, 3 * o).item(), rel=1e-12)


def _value_and_grad(p, o):
    p = p.clone().requires_grad_(True)
    loss = normalized_l2(p, o)
    loss.backward()
    return loss, p.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_zero_traces_give_finite_loss_and_gradient(dtype):
    p, o = _pair(seed=3, dtype=dtype)
    p[0, :, 1, 0] = 0  # a predicted trace the wave has not reached
    o[2, :, 3, 1] = 0  # a muted observed trace
    p[1, :, 4, 1] = 0
    o[1, :, 4, 1] = 0  # zero in both: no loss and no gradient
    loss, grad = _value_and_grad(p, o)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    assert torch.count_nonzero(grad[1, :, 4, 1]) == 0

    zeros = torch.zeros_like(p)
    for pred, obs in ((zeros, zeros), (zeros, o), (p, zeros)):
        loss, grad = _value_and_grad(pred, obs)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
    loss, grad = _value_and_grad(zeros, zeros)
    assert loss.item() == 0 and torch.count_nonzero(grad) == 0


def test_normalized_l2_gradcheck():
    p, o = _pair(shape=(2, 5, 2, 2), seed=4)
    p.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: normalized_l2(x, o), (p,))


@pytest.mark.parametrize("name", sorted(MISFITS))
def test_shape_mismatch_names_both_shapes(name):
    p, o = _pair()
    with pytest.raises(ValueError, match=r"\(4, 30, 5, 2\).*\(4, 30, 4, 2\)"):
        get_misfit(name)(p, o[:, :, :4])
    with pytest.raises(ValueError, match="nshots, nt, nrec, ncomp"):
        get_misfit(name)(p[0], o[0])


def test_unknown_misfit_lists_choices():
    with pytest.raises(ValueError, match="l2.*normalized_l2.*'l1'"):
        get_misfit("l1")
