"""ddic.segment: prompts, SAM wrapper (offline, tiny random SAM), classical backend, backend choice, CLI.

SAM runs with segment_anything's real PromptEncoder and MaskDecoder at their real widths and a tiny
randomly initialised ViT image encoder (img_size 256, one block), so coordinate transforms, output
shapes and the embedding cache are exercised without weights or network. Where the test needs to know
where a mask *should* be, the mask decoder is replaced by one that paints a disc at the prompt point,
read from the prompt encoder's own input, which checks the full round trip original → SAM frame →
original.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from ddic.errors import DDICInputError, DDICModelError
from ddic.segment import ClassicalSegmenter, Prompts, make_segmenter, write_mask
from ddic.segment.classical import ClassicalOptions, gcnr
from ddic.segment.imaging import to_uint8
from ddic.segment.sam import SamSegmenter, choose_mask, load_sam_model

IMG = 256  # encoder input size of the tiny SAM (real SAM: 1024); embedding grid IMG/16 = 16


@pytest.fixture
def sa():
    """segment_anything (the optional ``sam`` extra); the SAM tests skip without it, the rest still run."""
    return pytest.importorskip("segment_anything")


def tiny_sam(seed: int = 0):
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    torch.manual_seed(seed)
    grid = IMG // 16
    encoder = ImageEncoderViT(img_size=IMG, patch_size=16, embed_dim=32, depth=1, num_heads=2, mlp_ratio=2.0,
                              out_chans=256, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                              use_rel_pos=False, window_size=0, global_attn_indexes=())
    prompt = PromptEncoder(embed_dim=256, image_embedding_size=(grid, grid), input_image_size=(IMG, IMG),
                           mask_in_chans=16)
    decoder = MaskDecoder(num_multimask_outputs=3, transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256,
                          transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8))
    return Sam(image_encoder=encoder, prompt_encoder=prompt, mask_decoder=decoder,
               pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375]).eval()


class PaintDecoder(torch.nn.Module):
    """Stands in for SAM's mask decoder: three discs of ``radii`` (in input-frame px) around the first
    prompt point, as low-res logits, with fixed predicted IoUs ``scores``; ``extra`` adds a stray blob."""

    def __init__(self, radii=(6.0, 10.0, 14.0), scores=(0.5, 0.9, 0.7), extra=None):
        super().__init__()
        self.radii, self.scores, self.extra, self.points = radii, scores, extra, None

    def forward(self, image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings,
                multimask_output):
        low = 4 * image_embeddings.shape[-1]  # SAM's low-res mask grid
        cell = IMG / low
        yy, xx = np.mgrid[0:low, 0:low]
        x, y = (float(v) for v in self.points[0, 0])
        masks = []
        for r in self.radii:
            m = (((xx + 0.5) * cell - x) ** 2 + ((yy + 0.5) * cell - y) ** 2) <= r * r
            if self.extra is not None:
                ex, ey, er = self.extra
                m |= (((xx + 0.5) * cell - ex) ** 2 + ((yy + 0.5) * cell - ey) ** 2) <= er * er
            masks.append(np.where(m, 10.0, -10.0))
        logits = torch.as_tensor(np.stack(masks)[None], dtype=torch.float32)
        iou = torch.tensor([list(self.scores)], dtype=torch.float32)
        if not multimask_output:
            return logits[:, :1], iou[:, :1]
        return logits, iou


def record_prompt_inputs(model) -> dict:
    """Capture the (already transformed) points and boxes the prompt encoder receives."""
    seen = {}

    def hook(module, args, kwargs):
        points = kwargs.get("points")
        seen["points"] = None if points is None else points[0].detach().clone()
        seen["labels"] = None if points is None else points[1].detach().clone()
        boxes = kwargs.get("boxes")
        seen["boxes"] = None if boxes is None else boxes.detach().clone()
        if isinstance(model.mask_decoder, PaintDecoder):
            model.mask_decoder.points = seen["points"]

    model.prompt_encoder.register_forward_pre_hook(hook, with_kwargs=True)
    return seen


class NotWeights:
    """A pickled object of this class can only be loaded by running code: weights_only must refuse it."""


@pytest.fixture
def rng():
    return np.random.default_rng(7)


# ---- prompts ---------------------------------------------------------------------------------


def test_prompts_normalise_the_box_and_check_points_against_a_non_square_image():
    p = Prompts(positive=((5, 6),), box=(30, 20, 10, 2))
    assert p.box == (10.0, 2.0, 30.0, 20.0)
    np.testing.assert_array_equal(Prompts.from_labelled([(1, 2), (3, 4, 0), (5, 6, 1)]).point_labels, [1, 1, 0])
    assert Prompts.from_labelled([(1, 2), (3, 4, 0)]).point_coords.tolist() == [[1, 2], [3, 4]]
    shape = (40, 100)  # 40 rows, 100 columns
    Prompts(positive=((80, 10),)).validated(shape)  # x = column 80 < 100: inside
    with pytest.raises(DDICInputError, match="outside"):
        Prompts(positive=((10, 80),)).validated(shape)  # y = row 80 >= 40: outside
    with pytest.raises(DDICInputError, match="outside"):
        Prompts(positive=((1, 1),), negative=((-3, 1),)).validated(shape)
    assert Prompts(box=(-5, -5, 120, 20)).validated(shape).box == (0.0, 0.0, 99.0, 20.0)
    with pytest.raises(DDICInputError, match="overlap"):
        Prompts(box=(150, 0, 160, 10)).validated(shape)
    with pytest.raises(DDICInputError, match="empty"):
        Prompts(box=(3, 3, 3, 9))
    with pytest.raises(DDICInputError, match="Nothing to segment"):
        Prompts(negative=((1, 1),))
    with pytest.raises(DDICInputError, match="label"):
        Prompts.from_labelled([(1, 2, 7)])
    with pytest.raises(DDICInputError, match="not finite"):
        Prompts(positive=((float("nan"), 1),))


def test_grayscale_scaling_rules():
    eight = np.arange(0, 200, dtype=np.float32).reshape(10, 20)
    np.testing.assert_array_equal(to_uint8(eight), eight.astype(np.uint8))  # 8-bit data passes through
    unit = np.linspace(0, 1, 400, dtype=np.float32).reshape(20, 20)  # float [0, 1]: stretched, not black
    out = to_uint8(unit)
    assert out.dtype == np.uint8 and out.max() == 255 and out.min() == 0
    mri = np.linspace(0, 4000, 400).reshape(20, 20).astype(np.int16)
    assert to_uint8(mri, "minmax").max() == 255
    with pytest.raises(DDICInputError, match="2D"):
        to_uint8(np.zeros((8, 8, 3)))
    with pytest.raises(DDICInputError, match="numeric"):
        to_uint8(np.zeros((8, 8), dtype=bool))
    with pytest.raises(DDICInputError, match="NaN"):
        to_uint8(np.full((8, 8), np.nan))
    with pytest.raises(DDICInputError, match="scaling"):
        to_uint8(eight, "log")


# ---- SAM wrapper -----------------------------------------------------------------------------


def test_sam_points_and_box_reach_the_prompt_encoder_in_the_resized_original_frame(rng, sa):
    model = tiny_sam()
    seen = record_prompt_inputs(model)
    seg = SamSegmenter(sa.SamPredictor(model))
    rows, cols = 100, 160  # landscape: the long side (x) is scaled to 256, so scale = 1.6 on both axes
    seg.set_image(rng.integers(0, 256, (rows, cols)).astype(np.uint8))
    result = seg.predict(Prompts(positive=((120, 30),), negative=((20, 90),), box=(100, 10, 150, 60)))
    np.testing.assert_allclose(seen["points"][0].numpy(), [[192.0, 48.0], [32.0, 144.0]], atol=1e-4)
    assert seen["labels"][0].tolist() == [1, 0]
    np.testing.assert_allclose(seen["boxes"].numpy().reshape(-1, 4), [[160.0, 16.0, 240.0, 96.0]], atol=1e-4)
    assert result.mask.shape == (rows, cols) and result.mask.dtype == bool
    assert len(result.scores) == 3 and result.score == max(result.scores) or "tie" in result.reason
    assert not result.mask[:, :99].any() and not result.mask[61:].any()  # nothing outside the box survives


@pytest.mark.parametrize("shape, point", [((100, 160), (120, 30)), ((150, 90), (20, 130))])
def test_sam_mask_comes_back_where_the_point_was(shape, point, rng, sa):
    model = tiny_sam()
    model.mask_decoder = PaintDecoder(extra=(230.0, 5.0, 8.0) if shape[1] > shape[0] else None)
    record_prompt_inputs(model)
    seg = SamSegmenter(sa.SamPredictor(model))
    seg.set_image(rng.normal(100, 20, shape))
    result = seg.predict(Prompts(positive=(point,)))
    assert result.chosen == 1 and result.score == pytest.approx(0.9) and "highest" in result.reason
    ys, xs = np.nonzero(result.mask)
    assert result.mask[point[1], point[0]]
    assert abs(xs.mean() - point[0]) < 1.5 and abs(ys.mean() - point[1]) < 1.5
    scale = max(shape) / IMG  # disc radius 10 px of the SAM frame in original pixels
    assert result.area_px == pytest.approx(np.pi * (10 * scale) ** 2, rel=0.3)  # low-res grid: 4 px steps
    assert result.details["raw_area_px"] >= result.area_px  # the stray blob (if any) was removed


def test_sam_tie_goes_to_the_prompt_consistent_then_smaller_mask(rng, sa):
    model = tiny_sam()
    model.mask_decoder = PaintDecoder(radii=(12.0, 6.0, 20.0), scores=(0.8, 0.8, 0.5))
    record_prompt_inputs(model)
    seg = SamSegmenter(sa.SamPredictor(model))
    seg.set_image(rng.normal(100, 20, (128, 128)))
    result = seg.predict(Prompts(positive=((64, 64),)))
    assert result.chosen == 1 and "tie" in result.reason
    single = seg.predict(Prompts(positive=((64, 64),)), multimask=False)
    assert len(single.scores) == 1 and single.chosen == 0
    masks = [np.zeros((9, 9), bool), np.ones((9, 9), bool), np.zeros((9, 9), bool)]
    masks[2][4, 4] = True
    index, reason = choose_mask(masks, np.array([0.99, 0.5, 0.5]), Prompts(positive=((4, 4),)))
    assert index == 2 and "empty" in reason  # the empty top scorer is passed over


def test_sam_embedding_is_computed_once_per_image_and_cached(rng, sa):
    model = tiny_sam()
    calls = []
    model.image_encoder.register_forward_hook(lambda *a: calls.append(1))
    seen_inputs = []
    predictor = sa.SamPredictor(model)
    original = predictor.set_image
    predictor.set_image = lambda image, *a, **k: (seen_inputs.append(image), original(image, *a, **k))[1]
    seg = SamSegmenter(predictor, cache_size=2)
    a = rng.random((64, 96)).astype(np.float32)  # float [0, 1]: must reach SAM as stretched uint8 RGB
    b = rng.integers(0, 256, (64, 96)).astype(np.uint8)
    info = seg.set_image(a)
    assert info.computed and info.shape == (64, 96)
    assert seen_inputs[0].dtype == np.uint8 and seen_inputs[0].shape == (64, 96, 3)
    assert seen_inputs[0].max() == 255
    for k in range(4):
        assert not seg.set_image(a.copy()).computed
        seg.predict(Prompts(positive=((10 + k, 20),)))
    assert len(calls) == 1 and seg.encoder_calls == 1
    seg.set_image(b)
    first_b = seg.predict(Prompts(positive=((50, 30),)), multimask=False).mask
    assert len(calls) == 2
    assert not seg.set_image(a).computed and len(calls) == 2  # back to a: from the cache
    seg.set_image(b)
    np.testing.assert_array_equal(seg.predict(Prompts(positive=((50, 30),)), multimask=False).mask, first_b)
    assert len(calls) == 2


def test_sam_refuses_bad_input_before_running_the_model(rng, sa):
    seg = SamSegmenter(sa.SamPredictor(tiny_sam()))
    with pytest.raises(DDICInputError, match="No image"):
        seg.predict(Prompts(positive=((1, 1),)))
    with pytest.raises(DDICInputError, match="2D"):
        seg.set_image(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(DDICInputError, match="numeric"):
        seg.set_image(np.array([["a", "b"], ["c", "d"]]))
    assert seg.encoder_calls == 0
    seg.set_image(rng.random((40, 30)))
    with pytest.raises(DDICInputError, match="outside"):
        seg.predict(Prompts(positive=((35, 5),)))  # x = 35 beyond the 30 columns


def test_checkpoints_are_read_tensors_only_and_checked_against_the_model_type(tmp_path, monkeypatch, sa):
    from ddic.segment import sam as sam_module

    tiny = tiny_sam(seed=3)
    path = tmp_path / "tiny_sam.pth"
    torch.save(tiny.state_dict(), path)
    built, loads = [], []
    monkeypatch.setitem(sam_module.SAM_MODEL_TYPES, "vit_b", 32)  # the tiny encoder's width stands for vit_b
    monkeypatch.setitem(sa.sam_model_registry, "vit_b",
                        lambda checkpoint=None: (built.append(checkpoint), tiny_sam(seed=4))[1])
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: (loads.append(k), real_load(*a, **k))[1])
    model = load_sam_model(path, device="cpu")
    assert built == [None]  # segment_anything never sees the file
    assert loads and all(k.get("weights_only") is True for k in loads)
    for key, value in tiny.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value)
    with pytest.raises(DDICModelError, match="vit_b checkpoint, not vit_h"):
        load_sam_model(path, model_type="vit_h")
    segmenter = make_segmenter("auto", checkpoint=str(path), device="cpu")  # a checkpoint given: SAM
    assert isinstance(segmenter, SamSegmenter) and "SAM vit_b" in segmenter.backend_message
    assert segmenter.device == "cpu"

    evil = tmp_path / "object.pth"
    torch.save({"image_encoder.patch_embed.proj.weight": NotWeights()}, evil)  # needs unpickling code
    with pytest.raises(DDICModelError, match="weights_only"):
        load_sam_model(evil)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(DDICModelError):
        load_sam_model(junk)
    with pytest.raises(DDICModelError, match="not found"):
        load_sam_model(tmp_path / "missing.pth")


# ---- classical backend -----------------------------------------------------------------------


def dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def ellipse(shape=(96, 128), centre=(70, 40), axes=(22, 12)):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return ((xx - centre[0]) / axes[0]) ** 2 + ((yy - centre[1]) / axes[1]) ** 2 <= 1


def speckled(rng, truth, inside=170.0, outside=80.0):
    """Fully developed speckle (multiplicative Rayleigh, mean 1) plus additive noise, as uint8."""
    speckle = rng.rayleigh(1.0, truth.shape) / np.sqrt(np.pi / 2)
    image = np.where(truth, inside, outside) * speckle * 0.8 + rng.normal(0, 8, truth.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def speckled_ellipse(rng, **kwargs):
    truth = ellipse(**kwargs)
    return speckled(rng, truth), truth


@pytest.mark.parametrize("smoothing", ["median", "curvature"])
def test_classical_segments_a_speckled_ellipse_from_a_point_or_a_box(rng, smoothing):
    image, truth = speckled_ellipse(rng)
    seg = ClassicalSegmenter(ClassicalOptions(smoothing=smoothing))
    seg.set_image(image)
    with_box = seg.predict(Prompts(positive=((70, 40),), box=(45, 25, 95, 55)))
    assert dice(with_box.mask, truth) > 0.9 and with_box.score > 0.5
    point_only = seg.predict(Prompts(positive=((70, 40),)))  # no box: tolerance chosen by contrast
    assert dice(point_only.mask, truth) > 0.85 and "tolerance" in point_only.reason
    box_only = seg.predict(Prompts(box=(45, 25, 95, 55)))
    assert dice(box_only.mask, truth) > 0.9
    assert "centre" in box_only.reason


def test_classical_negative_point_cuts_off_a_touching_neighbour(rng):
    left, right = ellipse(centre=(48, 48), axes=(16, 14)), ellipse(centre=(72, 48), axes=(16, 14))
    image = speckled(rng, left | right)  # two overlapping blobs of the same brightness
    seg = ClassicalSegmenter()
    seg.set_image(image)
    box = (26, 28, 94, 68)
    both = seg.predict(Prompts(positive=((44, 48),), box=box))
    assert dice(both.mask, left | right) > 0.9  # grows into the neighbour
    cut = seg.predict(Prompts(positive=((44, 48),), negative=((76, 48),), box=box))
    assert not cut.mask[:, 61:].any()  # cut at the midline x = 60 between the clicks
    assert dice(cut.mask, left & (np.arange(128)[None, :] <= 60)) > 0.9


def test_classical_on_a_phantom_label_map_image(rng):
    from ddic.data.labels import Label
    from ddic.data.phantom.anatomy import render_labels, sample_anatomy
    from scipy import ndimage

    labels = render_labels(sample_anatomy(5, ga_weeks=30.0))
    atrium = np.isin(labels, [Label.LATERAL_VENTRICLE, Label.CHOROID_PLEXUS])
    tissue = rng.uniform(50, 120, int(labels.max()) + 1)  # every other label its own grey
    image = np.where(atrium, 190.0, tissue[labels]) * rng.gamma(8.0, 1 / 8.0, labels.shape)
    comps, n = ndimage.label(atrium, np.ones((3, 3)))
    sizes = ndimage.sum_labels(atrium, comps, range(1, n + 1))
    seg = ClassicalSegmenter()
    seg.set_image(image)
    for index in np.argsort(sizes)[::-1][:2]:
        target = comps == index + 1
        depth = ndimage.distance_transform_edt(target)
        y, x = np.unravel_index(np.argmax(depth), depth.shape)
        ys, xs = np.nonzero(target)
        box = (xs.min() - 3, ys.min() - 3, xs.max() + 3, ys.max() + 3)
        result = seg.predict(Prompts(positive=((x, y),), box=box))
        assert dice(result.mask, target) > 0.8, (index, dice(result.mask, target))


def test_classical_errors_and_score():
    seg = ClassicalSegmenter()
    with pytest.raises(DDICInputError, match="No image"):
        seg.predict(Prompts(positive=((1, 1),)))
    seg.set_image(np.zeros((20, 20)))
    with pytest.raises(DDICInputError, match="inside the box"):
        seg.predict(Prompts(positive=((1, 1),), box=(10, 10, 18, 18)))
    with pytest.raises(DDICInputError, match="smoothing"):
        ClassicalOptions(smoothing="gaussian")
    assert gcnr(np.zeros(50), np.ones(50)) == pytest.approx(1.0)
    assert gcnr(np.arange(100.0), np.arange(100.0)) == pytest.approx(0.0)


# ---- backend choice, mask files, CLI ---------------------------------------------------------


def test_make_segmenter_says_which_backend_and_why(tmp_path, monkeypatch):
    monkeypatch.delenv("DDIC_SAM_CHECKPOINT", raising=False)
    auto = make_segmenter("auto")
    assert isinstance(auto, ClassicalSegmenter) and "no SAM checkpoint" in auto.backend_message
    assert "requested" in make_segmenter("classical").backend_message
    with pytest.raises(DDICInputError, match="needs weights"):
        make_segmenter("sam")
    with pytest.raises(DDICInputError, match="backend"):
        make_segmenter("medsam")
    monkeypatch.setenv("DDIC_SAM_CHECKPOINT", str(tmp_path / "gone.pth"))
    with pytest.raises(DDICModelError):
        make_segmenter("auto")  # a named checkpoint that is missing is an error, not a silent fallback
    assert isinstance(make_segmenter("classical"), ClassicalSegmenter)  # classical ignores the variable


def test_mask_files_keep_the_frame_geometry(tmp_path):
    import SimpleITK as sitk
    from ddic.io.images import Frame

    frame = Frame.from_array(np.zeros((12, 20)), spacing=(0.4, 0.7), origin=(5.0, -3.0))
    mask = np.zeros((12, 20), bool)
    mask[2:5, 3:9] = True
    nrrd = sitk.ReadImage(str(write_mask(mask, frame, tmp_path / "m.nrrd")))
    assert nrrd.GetSpacing() == pytest.approx((0.4, 0.7)) and nrrd.GetOrigin() == pytest.approx((5.0, -3.0))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(nrrd), mask.astype(np.float32))
    png = sitk.GetArrayFromImage(sitk.ReadImage(str(write_mask(mask, frame, tmp_path / "m.png"))))
    assert set(np.unique(png)) == {0, 255}
    with pytest.raises(DDICInputError, match="mask"):
        write_mask(mask, frame, tmp_path / "m.jpg")


def test_cli_segment_writes_the_mask_with_the_image_geometry(tmp_path, rng, capsys):
    import SimpleITK as sitk
    from ddic.cli.main import main

    image, truth = speckled_ellipse(rng)
    source = sitk.GetImageFromArray(image.astype(np.float32))
    source.SetSpacing((0.3, 0.3))
    source.SetOrigin((1.0, 2.0))
    sitk.WriteImage(source, str(tmp_path / "frame.nrrd"))
    out = tmp_path / "mask.nrrd"
    assert main(["segment", str(tmp_path / "frame.nrrd"), "--points", "70,40", "60,40,1", "--box", "95,55,45,25",
                 "--backend", "classical", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "classical" in printed and "score" in printed
    mask_image = sitk.ReadImage(str(out))
    assert mask_image.GetSpacing() == pytest.approx((0.3, 0.3)) and mask_image.GetOrigin() == pytest.approx((1, 2))
    assert dice(sitk.GetArrayFromImage(mask_image) > 0, truth) > 0.9
    assert main(["segment", str(tmp_path / "frame.nrrd"), "--points", "500,40", "--out", str(out)]) == 2
    assert "outside" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["segment", str(tmp_path / "frame.nrrd"), "--points", "70", "--out", str(out)])
