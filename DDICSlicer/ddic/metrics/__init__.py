"""Scoring translations: MI, PSNR, SSIM, FID / KID, paired-truth scores, statistics and the reader study.

Why a package of its own: ``ddic evaluate``, the CLI and (later) the Slicer module must compute every number the
same way, and each definition lives in exactly one module here (method.md §6, sam-metrics.md §4–6):

- :mod:`.mutual_information` — KSG (k = 3, nats; primary) and 32-bin histogram MI (cross-check);
- :mod:`.psnr`, :mod:`.ssim` — with an explicit intensity range (:mod:`.datarange`; 255 for uint8);
- :mod:`.truth` — Dice and atrium-width error where the phantom gives paired truth;
- :mod:`.fid` — FID / KID from feature sets with bootstrap intervals (numpy + scipy);
  :mod:`.features` (extractor interface, stub), :mod:`.inception` (Inception v3 from a local file; torch and
  the optional pytorch-fid, imported only when used);
- :mod:`.statistics` — summaries, Welch / paired t / Wilcoxon, effect sizes, Holm;
- :mod:`.agreement` — Wilson intervals, Fleiss' kappa; :mod:`.reader_study` — the blinded reader study;
- :mod:`.jsonsafe` — how ±inf and NaN are written to JSON.

CNR and gCNR are :mod:`ddic.measure`'s (re-exported here for convenience). Importing this package does not
import torch.
"""

from ..measure import cnr, gcnr, measure_contrast, measure_pair  # noqa: F401
from .agreement import binary_counts, fleiss_kappa, wilson_interval  # noqa: F401
from .datarange import PAPER_MAX, resolve_data_range  # noqa: F401
from .features import FeatureExtractor, RandomProjectionFeatures, extract_features  # noqa: F401
from .fid import (  # noqa: F401
    REFERENCE_REAL_MRI,
    REFERENCE_SOURCE_US,
    FeatureSetComparison,
    bootstrap_fid_kid,
    compare_feature_sets,
    compare_to_references,
    feature_statistics,
    fid_from_features,
    frechet_distance,
    kid_from_features,
    mmd2_unbiased,
)
from .jsonsafe import from_json_number, json_number, json_safe  # noqa: F401
from .mutual_information import (  # noqa: F401
    histogram_mutual_information,
    image_mutual_information,
    ksg_mutual_information,
    paired_pixels,
)
from .psnr import mean_squared_error, psnr  # noqa: F401
from .ssim import ssim, ssim_map  # noqa: F401
from .statistics import (  # noqa: F401
    PairTest,
    PairwiseComparison,
    Summary,
    cohens_d,
    cohens_dz,
    compare_methods,
    format_mean_sd,
    hedges_g,
    holm,
    paired_t_test,
    rank_biserial,
    summarize,
    welch_test,
    wilcoxon_test,
)
from .truth import (  # noqa: F401
    WidthError,
    atrium_width_error,
    atrium_width_error_from_mask,
    dice,
    dice_per_label,
)
