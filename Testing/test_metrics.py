"""ddic.metrics: MI, PSNR, SSIM, paired-truth scores, FID / KID, statistics and agreement.

Values are checked against hand computation, closed forms (bivariate Gaussian MI, Fréchet distance of Gaussians,
Welch's formula, Wikipedia's Fleiss' kappa example) and scipy; FID / KID use a stub feature extractor (no
Inception weights exist here; the Inception path is exercised with random weights when pytorch-fid is installed).
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from ddic.errors import DDICInputError, DDICModelError
from ddic.metrics import (
    RandomProjectionFeatures,
    atrium_width_error,
    atrium_width_error_from_mask,
    bootstrap_fid_kid,
    cohens_d,
    cohens_dz,
    compare_feature_sets,
    compare_methods,
    compare_to_references,
    dice,
    dice_per_label,
    extract_features,
    feature_statistics,
    fid_from_features,
    fleiss_kappa,
    format_mean_sd,
    frechet_distance,
    from_json_number,
    hedges_g,
    histogram_mutual_information,
    holm,
    image_mutual_information,
    json_safe,
    kid_from_features,
    ksg_mutual_information,
    mmd2_unbiased,
    paired_pixels,
    paired_t_test,
    psnr,
    rank_biserial,
    ssim,
    summarize,
    welch_test,
    wilcoxon_test,
    wilson_interval,
)
from ddic.metrics.agreement import binary_counts
from ddic.metrics.fid import (
    REFERENCE_REAL_MRI,
    REFERENCE_SOURCE_US,
    centred_interval,
    polynomial_kernel,
)
from ddic.metrics.statistics import hedges_correction


def structured_image(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A smooth blob pattern plus noise, uint8 (an image with structure, unlike pure noise)."""
    y, x = np.mgrid[0:size, 0:size] / size
    base = 120 + 80 * np.sin(6 * x) * np.cos(4 * y) + rng.normal(0, 10, (size, size))
    return np.clip(base, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------------------
# mutual information


def test_ksg_independent_images_give_zero(rng):
    a = rng.integers(0, 256, (128, 128)).astype(np.uint8)
    b = rng.integers(0, 256, (128, 128)).astype(np.uint8)
    assert abs(image_mutual_information(a, b)) < 0.02
    # the histogram estimate carries its documented upward bias, (B-1)^2 / 2N ≈ 0.03 nats
    hist = image_mutual_information(a, b, estimator="histogram")
    assert 0.01 < hist < 0.05


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_ksg_bivariate_gaussian_matches_closed_form(rho):
    rng = np.random.default_rng(7)  # the estimate's SD at N = 4000 is ~0.01 nats
    x = rng.standard_normal(4000)
    y = rho * x + math.sqrt(1 - rho**2) * rng.standard_normal(4000)
    expected = -0.5 * math.log(1 - rho**2)
    assert ksg_mutual_information(x, y) == pytest.approx(expected, abs=0.04)


def test_ksg_identical_images_large_and_deterministic(rng):
    a = structured_image(rng)
    b = np.clip(255 - 0.8 * a.astype(float) + rng.normal(0, 10, a.shape), 0, 255)
    same = image_mutual_information(a, a)
    dependent = image_mutual_information(a, b)
    assert same > 3.0
    assert 0.2 < dependent < same
    assert image_mutual_information(a, b) == dependent  # fixed seed: bit-reproducible
    # invariant to an affine intensity change of one image (up to the tie-breaking jitter)
    assert image_mutual_information(a, 3.0 * b + 7.0) == pytest.approx(dependent, abs=1e-3)


def test_histogram_mi_hand_values():
    x = np.array([0, 0, 128, 128])
    assert histogram_mutual_information(x, x, bins=2) == pytest.approx(math.log(2))
    assert histogram_mutual_information(x, np.array([0, 128, 0, 128]), bins=2) == pytest.approx(0.0)
    # MI(a, a) is the entropy of the binned image
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, 5000)
    p = np.histogram(a, bins=32, range=(0, 256))[0] / a.size
    entropy = -np.sum(p[p > 0] * np.log(p[p > 0]))
    assert histogram_mutual_information(a, a) == pytest.approx(entropy)


def test_mi_constant_image_is_zero_and_errors(rng):
    a = structured_image(rng, 32)
    assert ksg_mutual_information(a.ravel(), np.full(a.size, 7.0)) == 0.0
    with pytest.raises(DDICInputError, match="different shapes"):
        image_mutual_information(a, a[:, :16])
    with pytest.raises(DDICInputError, match="outside the histogram range"):
        histogram_mutual_information(np.array([0.0, 300.0]), np.array([0.0, 1.0]))
    with pytest.raises(DDICInputError, match="Unknown MI estimator"):
        image_mutual_information(a, a, estimator="nmi")
    with pytest.raises(DDICInputError, match="more than 3 samples"):
        ksg_mutual_information([1, 2, 3], [1, 2, 3])


def test_paired_pixels_subsample_keeps_pairs_and_mask(rng):
    a = rng.integers(0, 200, (200, 200)).astype(np.float32)
    x, y = paired_pixels(a, a + 1.0, max_pixels=1000)
    assert x.shape == y.shape == (1000,)
    assert np.all(y - x == 1.0)  # the same pixel of both images
    x2, _ = paired_pixels(a, a + 1.0, max_pixels=1000)
    assert np.array_equal(x, x2)  # fixed seed
    mask = np.zeros(a.shape, bool)
    mask[:10, :10] = True
    x, _ = paired_pixels(a, a, mask=mask)
    assert x.size == 100


# ------------------------------------------------------------------------------------------------------------
# PSNR, SSIM and JSON


def test_psnr_hand_value_and_infinity():
    a = np.zeros((4, 4), np.uint8)
    b = a.copy()
    b[0, 0] = 16  # MSE = 256 / 16 = 16
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 16))
    assert psnr(a.astype(np.float32), b.astype(np.float32), data_range=255) == pytest.approx(psnr(a, b))
    assert psnr(a, b, data_range=1.0) == pytest.approx(10 * math.log10(1 / 16))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # identical images: inf without a divide-by-zero warning
        assert psnr(a, a) == math.inf


def test_psnr_refuses_float_without_range():
    a = np.zeros((4, 4), np.float32)
    with pytest.raises(DDICInputError, match="data_range"):
        psnr(a, a)
    with pytest.raises(DDICInputError, match="data_range"):
        psnr(a.astype(np.uint16), a.astype(np.uint16))
    with pytest.raises(DDICInputError, match="positive"):
        psnr(a, a, data_range=0)


def test_json_safe_writes_infinity_as_string():
    text = json.dumps(json_safe({"psnr": math.inf, "low": -math.inf, "cnr": math.nan, "x": np.float32(1.5),
                                 "v": np.arange(2)}), allow_nan=False)
    data = json.loads(text)
    assert data == {"psnr": "inf", "low": "-inf", "cnr": None, "x": 1.5, "v": [0, 1]}
    assert from_json_number(data["psnr"]) == math.inf
    assert math.isnan(from_json_number(data["cnr"]))


def test_ssim_hand_values(rng):
    a = structured_image(rng, 32)
    assert ssim(a, a) == pytest.approx(1.0)
    # constant images: σ = 0 everywhere, so SSIM = (2 c1 c2 + C1) / (c1² + c2² + C1) exactly
    c1, c2 = 100.0, 120.0
    const1, const2 = np.full((16, 16), c1, np.uint8), np.full((16, 16), c2, np.uint8)
    C1 = (0.01 * 255) ** 2
    assert ssim(const1, const2) == pytest.approx((2 * c1 * c2 + C1) / (c1**2 + c2**2 + C1))
    noisy = np.clip(a + rng.normal(0, 25, a.shape), 0, 255).astype(np.uint8)
    value = ssim(a, noisy)
    assert 0.0 < value < 0.95
    assert ssim(noisy, a) == pytest.approx(value)  # symmetric
    with pytest.raises(DDICInputError, match="at least 11"):
        ssim(a[:8, :8], a[:8, :8])


def test_ssim_and_psnr_match_scikit_image_if_installed(rng):
    metrics = pytest.importorskip("skimage.metrics")
    a = structured_image(rng, 40)
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    expected = metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                             data_range=255)
    assert ssim(a, b) == pytest.approx(expected, abs=1e-10)
    assert psnr(a, b) == pytest.approx(metrics.peak_signal_noise_ratio(a, b, data_range=255))


# ------------------------------------------------------------------------------------------------------------
# paired truth


def test_dice_hand_values():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[0, :4] = True  # 4 pixels
    b[0, 1:4] = True
    b[1, :3] = True  # 6 pixels, 3 shared
    assert dice(a, b) == pytest.approx(0.6)
    assert dice(a, a) == 1.0
    assert math.isnan(dice(np.zeros((3, 3)), np.zeros((3, 3))))
    labels = np.array([[1, 1, 2], [0, 2, 2]])
    assert dice_per_label(labels, labels, {"lv": 1, "sf": 2}) == {"lv": 1.0, "sf": 1.0}
    with pytest.raises(DDICInputError, match="different shapes"):
        dice(a, b[:2])


def test_atrium_width_error():
    err = atrium_width_error(11.5, 10.0)
    assert (err.error_mm, err.abs_error_mm, err.relative_error) == pytest.approx((1.5, 1.5, 0.15))
    mask = np.zeros((60, 40), bool)
    mask[10:50, 17:23] = True  # a 6-px-wide straight "ventricle" along the rows
    measured = atrium_width_error_from_mask(mask, 3.0, spacing_xy=(0.5, 0.5))
    assert measured.measured_mm == pytest.approx(3.0, abs=0.1)
    assert measured.note == ""
    empty = atrium_width_error_from_mask(np.zeros((20, 20), bool), 3.0)
    assert math.isnan(empty.measured_mm) and empty.note.startswith("not measurable")
    with pytest.raises(DDICInputError, match="positive"):
        atrium_width_error(3.0, 0.0)


# ------------------------------------------------------------------------------------------------------------
# FID and KID


def test_fid_identical_and_shifted_sets(rng):
    a = rng.standard_normal((30, 50))
    assert fid_from_features(a, a) == pytest.approx(0.0, abs=1e-8)
    delta = rng.normal(0, 0.5, 50)
    assert fid_from_features(a, a + delta) == pytest.approx(float(delta @ delta), rel=1e-8)
    # the statistics path (scipy.linalg.sqrtm) gives the same
    assert frechet_distance(*feature_statistics(a), *feature_statistics(a + delta)) == pytest.approx(
        float(delta @ delta), rel=1e-5)


@pytest.mark.parametrize("n1,n2,d", [(12, 15, 40), (60, 50, 6)])
def test_fid_singular_value_path_matches_sqrtm(rng, n1, n2, d):
    a = rng.standard_normal((n1, d))
    b = 0.7 * rng.standard_normal((n2, d)) + 0.2
    expected = frechet_distance(*feature_statistics(a), *feature_statistics(b))
    assert fid_from_features(a, b) == pytest.approx(expected, rel=1e-5)


def test_frechet_distance_of_known_gaussians():
    mu1, mu2 = np.array([0.0, 1.0]), np.array([2.0, 1.0])
    s1, s2 = np.diag([1.0, 4.0]), np.diag([9.0, 1.0])
    # diagonal covariances: ‖Δμ‖² + Σ (√σ1 − √σ2)²
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(4.0 + (1 - 3) ** 2 + (2 - 1) ** 2)


def test_kid_matches_explicit_sums(rng):
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((4, 3)) + 0.5

    def k(u, v):
        return (u @ v / 3 + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / 20
    yy = sum(k(y[i], y[j]) for i in range(4) for j in range(4) if i != j) / 12
    xy = sum(k(x[i], y[j]) for i in range(5) for j in range(4)) / 20
    assert mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy)
    # a subset as large as the sets is the whole set: KID = the U-statistic, no spread over subsets
    kid, sd = kid_from_features(x[:4], y, subset_size=1000, n_subsets=5)
    assert kid == pytest.approx(mmd2_unbiased(x[:4], y))
    assert sd == pytest.approx(0.0, abs=1e-12)
    # resampled rows that are the same image are left out of the within-set mean
    ids = np.array([0, 0, 1])
    value = mmd2_unbiased(x[ids], y, ids_x=ids)
    assert value == pytest.approx(k(x[0], x[1]) + yy - 2 * float(polynomial_kernel(x[ids], y).mean()))


def test_kid_near_zero_for_same_distribution_and_positive_for_shift(rng):
    a, b = rng.standard_normal((80, 16)), rng.standard_normal((80, 16))
    same, _ = kid_from_features(a, b, n_subsets=20)
    shifted, _ = kid_from_features(a, b + 1.0, n_subsets=20)
    assert abs(same) < 0.1  # unbiased, but noisy at small N
    assert shifted > 3.0


def test_bootstrap_intervals_reproducible_and_cover_estimate(rng):
    a, b = rng.standard_normal((20, 8)), rng.standard_normal((25, 8)) + 0.3
    f1, k1 = bootstrap_fid_kid(a, b, n_bootstrap=50, seed=3)
    f2, k2 = bootstrap_fid_kid(a, b, n_bootstrap=50, seed=3)
    assert np.array_equal(f1, f2) and np.array_equal(k1, k2)
    result = compare_feature_sets(a, b, n_bootstrap=100, reference_name="x", extractor="stub")
    assert result.fid_ci[0] <= result.fid <= result.fid_ci[1]
    assert result.kid_ci[0] < result.kid_ci[1]
    assert (result.n_generated, result.n_reference, result.dims, result.kid_subset_size) == (20, 25, 8, 20)
    assert centred_interval([1.0, 2.0, 3.0], 10.0, 0.5) == pytest.approx((9.5, 10.5))
    json.dumps(json_safe(result.to_dict()), allow_nan=False)


def test_compare_to_both_references_with_stub_extractor(rng):
    extractor = RandomProjectionFeatures(dims=12, size=8, seed=1)
    pseudo = [structured_image(rng, 32) for _ in range(6)]
    us = [rng.integers(0, 256, (40, 48)).astype(np.uint8) for _ in range(5)]  # any size: the stub resizes
    mri = [structured_image(rng, 32) for _ in range(7)]
    calls = []
    feats = {name: extract_features(images, extractor, batch_size=4, progress=lambda d, t, m: calls.append((d, t)))
             for name, images in (("pseudo", pseudo), ("us", us), ("mri", mri))}
    assert feats["pseudo"].shape == (6, 12) and feats["us"].shape == (5, 12)
    assert calls[:2] == [(4, 6), (6, 6)]
    assert np.array_equal(extractor(pseudo), feats["pseudo"])  # deterministic
    results = compare_to_references(feats["pseudo"], {REFERENCE_SOURCE_US: feats["us"],
                                                      REFERENCE_REAL_MRI: feats["mri"]},
                                    n_bootstrap=30, extractor=extractor.name)
    assert set(results) == {"source_us", "real_mri"}
    # pseudo and "real MRI" share the structured pattern: closer than the noise-like US set
    assert results["real_mri"].fid < results["source_us"].fid
    with pytest.raises(DDICInputError, match="same extractor"):
        fid_from_features(feats["pseudo"], feats["us"][:, :5])


def test_inception_weights_missing_gives_clear_error(tmp_path, monkeypatch):
    from ddic.metrics.inception import (
        INCEPTION_FILE,
        INCEPTION_SHA256,
        WEIGHTS_ENV,
        InceptionFeatures,
    )

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    with pytest.raises(DDICModelError) as err:
        InceptionFeatures()
    message = str(err.value)
    assert INCEPTION_FILE in message and INCEPTION_SHA256 in message
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / INCEPTION_FILE) in message
    assert "never downloads" in message
    # a wrong file in the standard place is refused by size / hash, before any network or package use
    target = tmp_path / "torch" / "hub" / "checkpoints" / INCEPTION_FILE
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not weights")
    with pytest.raises(DDICModelError, match="incomplete or a different model"):
        InceptionFeatures()
    with pytest.raises(DDICModelError, match="SHA-256"):
        InceptionFeatures(weights=target, sha256="0" * 64)
    with pytest.raises(DDICModelError, match="elsewhere.pth"):
        InceptionFeatures(weights=tmp_path / "elsewhere.pth")
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "named_by_env.pth"))  # named but missing: no fallback
    with pytest.raises(DDICModelError, match="named_by_env.pth"):
        InceptionFeatures()


@pytest.mark.slow
def test_inception_features_from_local_random_weights(tmp_path):
    """Plumbing only: random weights saved under the expected name, loaded with weights_only, 2048-d output."""
    pytest.importorskip("pytorch_fid")
    import torch
    import torchvision
    from ddic.metrics.inception import INCEPTION_FILE, InceptionFeatures, sha256_of

    torch.manual_seed(0)
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    path = tmp_path / INCEPTION_FILE
    torch.save(net.state_dict(), path)
    extractor = InceptionFeatures(weights=path, sha256=sha256_of(path))
    features = extractor([np.full((40, 50), 100.0), np.zeros((64, 64))])
    assert features.shape == (2, 2048)
    assert np.all(np.isfinite(features))


# ------------------------------------------------------------------------------------------------------------
# statistics


def test_welch_against_hand_formula():
    from scipy import stats

    a = np.array([12.1, 14.3, 13.8, 15.2, 12.9, 14.7])
    b = np.array([10.2, 11.9, 13.1, 9.8, 12.4, 11.1, 10.7, 12.0])
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    result = welch_test(a, b)
    assert result.statistic == pytest.approx(t)
    assert result.df == pytest.approx(df)
    assert result.pvalue == pytest.approx(2 * stats.t.sf(abs(t), df))
    assert result.ci_low < a.mean() - b.mean() < result.ci_high


def test_effect_sizes_hand_values():
    a, b = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]
    assert cohens_d(a, b) == pytest.approx(-3.0)
    assert hedges_correction(4) == pytest.approx(1 / (math.sqrt(2) * math.gamma(1.5)))
    assert hedges_g(a, b) == pytest.approx(-3.0 * 0.7978845608)
    assert cohens_dz([2.0, 5.0, 4.0], [1.0, 2.0, 2.0]) == pytest.approx(2.0)  # diffs 1, 3, 2: mean 2, SD 1
    assert rank_biserial([1.0, -2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]) == pytest.approx(0.6)


def test_paired_tests_against_scipy_and_nonfinite_dropped(rng):
    from scipy import stats

    a = rng.normal(30, 2, 20)
    b = a - rng.normal(0.8, 1.0, 20)
    t = paired_t_test(a, b)
    ref = stats.ttest_rel(a, b)
    assert (t.statistic, t.pvalue, t.df) == pytest.approx((ref.statistic, ref.pvalue, ref.df))
    w = wilcoxon_test(a, b)
    assert w.pvalue == pytest.approx(stats.wilcoxon(a, b).pvalue)
    a_inf = a.copy()
    a_inf[0] = math.inf  # e.g. PSNR of an identical pair
    dropped = paired_t_test(a_inf, b)
    assert dropped.n_a == 19
    assert dropped.statistic == pytest.approx(stats.ttest_rel(a[1:], b[1:]).statistic)
    assert math.isnan(wilcoxon_test(a, a).pvalue)
    with pytest.raises(DDICInputError, match="one value per image"):
        paired_t_test(a, b[:5])


def test_holm_hand_example():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.02, math.nan, 0.5])
    assert adjusted[0] == pytest.approx(0.04) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.5)


def test_compare_methods_pairs_and_holm(rng):
    base = rng.normal(0, 1, 15)
    values = {"ddic": base + 1.0, "ddib": base + 0.2 + rng.normal(0, 0.3, 15),
              "cyclegan": base + rng.normal(0, 0.1, 15)}
    comparisons = compare_methods(values)
    assert [(c.a, c.b) for c in comparisons] == [("ddic", "ddib"), ("ddic", "cyclegan"), ("ddib", "cyclegan")]
    raw = [c.results["paired_t"].pvalue for c in comparisons]
    assert [c.holm_pvalues["paired_t"] for c in comparisons] == pytest.approx(holm(raw))
    assert comparisons[0].results["welch"].mean_difference == pytest.approx(np.mean(values["ddic"] - values["ddib"]))
    json.dumps(json_safe([c.to_dict() for c in comparisons]), allow_nan=False)
    with pytest.raises(DDICInputError, match="Unknown test"):
        compare_methods(values, tests=("anova",))


def test_summary_and_mean_sd_format():
    s = summarize([1.0, 2.0, 3.0, math.inf, math.nan])
    assert (s.n, s.mean, s.sd, s.n_nonfinite, s.n_posinf) == (3, 2.0, 1.0, 2, 1)
    assert format_mean_sd(s) == "2.00 ± 1.00 [+1 inf] [1 undefined]"
    assert format_mean_sd([5.0], digits=1) == "5.0 (n = 1)"
    assert format_mean_sd([]) == "n/a"


# ------------------------------------------------------------------------------------------------------------
# agreement


def test_fleiss_kappa_wikipedia_example():
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(table) == pytest.approx(0.2099, abs=5e-4)
    assert fleiss_kappa(binary_counts([[1, 1, 1], [0, 0, 0], [1, 1, 1]])) == pytest.approx(1.0)
    assert math.isnan(fleiss_kappa(binary_counts([[1, 1], [1, 1]])))
    with pytest.raises(DDICInputError, match="same number of raters"):
        fleiss_kappa([[1, 1], [2, 1]])


def test_wilson_interval_is_the_score_test_inversion():
    from scipy.stats import norm

    z = norm.ppf(0.975)
    for k, n in ((81, 100), (3, 10), (10, 10)):
        low, high = wilson_interval(k, n)
        for p in (low, high):
            if 0 < p < 1:  # endpoints solve |p̂ − p| = z √(p(1 − p)/n)
                assert abs(k / n - p) == pytest.approx(z * math.sqrt(p * (1 - p) / n))
        assert low < k / n <= high
    assert wilson_interval(0, 10)[0] == 0.0
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
