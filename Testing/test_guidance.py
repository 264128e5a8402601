"""Median filter, Pearson correlation and the correlation loss that DDIC descends."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from ddic.translate.guidance import correlation_loss, median_filter, pearson


@pytest.mark.parametrize("kernel", [3, 5, 7])
def test_median_matches_scipy_with_reflect_padding(kernel, rng):
    image = rng.normal(size=(1, 1, 13, 17))
    ours = median_filter(torch.from_numpy(image), kernel).numpy()[0, 0]
    # torch's "reflect" (d c b | a b c d) is scipy's "mirror"
    np.testing.assert_allclose(ours, ndimage.median_filter(image[0, 0], size=kernel, mode="mirror"))


def test_median_rejects_even_kernels_and_passes_through_k1():
    x = torch.randn(1, 1, 8, 8)
    with pytest.raises(ValueError, match="odd"):
        median_filter(x, 4)
    assert median_filter(x, 1) is x


def test_median_gradient_reaches_only_median_elements():
    x = torch.randn(1, 1, 16, 16, dtype=torch.float64, requires_grad=True)
    median_filter(x, 5).sum().backward()
    grad = x.grad[0, 0]
    assert grad.sum().item() == pytest.approx(256.0)  # each output pixel routes its gradient to one input
    assert ((grad != 0).sum() < 256).item()
    assert torch.all((grad == torch.round(grad)))


def test_pearson_matches_numpy(rng):
    a, b = rng.normal(size=(3, 1, 6, 6)), rng.normal(size=(3, 1, 6, 6))
    b[1] = 2 * a[1] + 1  # r = 1
    r = pearson(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    expected = [np.corrcoef(a[i].ravel(), b[i].ravel())[0, 1] for i in range(3)]
    np.testing.assert_allclose(r, expected, rtol=1e-10)
    assert r[1] == pytest.approx(1.0)


def test_loss_signs(rng):
    a = torch.from_numpy(rng.normal(size=(2, 1, 8, 8)))
    b = -a + 0.1 * torch.from_numpy(rng.normal(size=(2, 1, 8, 8)))
    r = pearson(median_filter(a, 3), median_filter(b, 3))
    assert torch.all(r < -0.5)
    assert torch.allclose(correlation_loss(a, b, 3, "+1"), -r)
    assert torch.allclose(correlation_loss(a, b, 3, "-1"), r)
    assert torch.allclose(correlation_loss(a, b, 3, "abs"), -r.abs())
    with pytest.raises(ValueError):
        correlation_loss(a, b, 3, "+2")


def test_correlation_gradient_matches_finite_differences(rng):
    reference = torch.from_numpy(rng.normal(size=(2, 1, 7, 7)))
    guided = torch.from_numpy(rng.normal(size=(2, 1, 7, 7))).requires_grad_(True)
    # kernel 1 is differentiable everywhere; kernel 3 is piecewise linear (valid away from ties)
    for kernel in (1, 3):
        assert torch.autograd.gradcheck(lambda y: correlation_loss(reference, y, kernel, "+1").sum(),
                                        (guided,), eps=1e-7, atol=1e-6)


def test_summed_loss_gradient_is_batch_size_independent(rng):
    reference = torch.from_numpy(rng.normal(size=(3, 1, 12, 12)))
    guided = torch.from_numpy(rng.normal(size=(3, 1, 12, 12)))
    y = guided.clone().requires_grad_(True)
    (batch_grad,) = torch.autograd.grad(correlation_loss(reference, y, 5, "+1").sum(), y)
    y0 = guided[:1].clone().requires_grad_(True)
    (single_grad,) = torch.autograd.grad(correlation_loss(reference[:1], y0, 5, "+1").sum(), y0)
    assert torch.allclose(batch_grad[:1], single_grad, rtol=1e-12, atol=1e-15)


def test_local_ncc_squared_is_sign_invariant_and_local():
    from ddic.translate.guidance import correlation_loss, local_ncc_squared

    g = torch.Generator().manual_seed(3)
    a = torch.randn(2, 1, 24, 24, generator=g)
    assert torch.allclose(local_ncc_squared(a, a, 7), local_ncc_squared(a, -a, 7), atol=1e-6)
    assert local_ncc_squared(a, a, 7).min().item() > 0.99
    # opposite polarity in the left and right halves: global Pearson ≈ 0, local NCC² still ≈ 1
    b = a.clone()
    b[..., 12:] = -b[..., 12:]
    from ddic.translate.guidance import pearson
    assert abs(pearson(a, b).mean().item()) < 0.2 and local_ncc_squared(a, b, 5).mean().item() > 0.8
    loss = correlation_loss(a, b.requires_grad_(), 1, "+1", measure="lncc2", window=5)
    (grad,) = torch.autograd.grad(loss.sum(), b)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
