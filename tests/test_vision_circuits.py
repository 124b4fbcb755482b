"""mi_course.vision.circuits: expanded weights (checked against the chain run in sequence, and through
InceptionV1's real branches and a residual block), top inputs, rotation and equivariance (against models whose
channels are exact rotated copies), union over cases, polysemanticity and the universality comparison; then
lesson 04's claims about the shipped lite models, measured on inputs other than the notebook's."""

from functools import cache

import pytest
import torch
import torch.nn.functional as F

import mi_course
from mi_course.vision import circuits as C
from mi_course.vision.stimuli import curve_stimulus, line_stimulus
from mi_course.vision.tuning import channel_responses, curve_detector_report


@cache
def lite(role: str = "vision"):
    torch.set_num_threads(1)
    return mi_course.load_model(role, mode="lite", device="cpu")


@cache
def inception():
    from mi_course.models.dry_run import inceptionv1

    return inceptionv1()


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


class Magnitude(torch.nn.Module):
    """|x|: a template's match with either polarity (a hook on the layer sees it)."""

    def forward(self, x):
        return x.abs()


class Matched(torch.nn.Module):
    """Layer ``conv``: channel c matches (either polarity) a template over the whole 64-px image: an arc bulging
    towards ``orientations[c]``, or a straight segment for ``None``."""

    def __init__(self, orientations):
        super().__init__()
        self.conv = torch.nn.Sequential(torch.nn.Conv2d(3, len(orientations), 64, bias=False), Magnitude())
        with torch.no_grad():
            for c, o in enumerate(orientations):
                t = 1 - (line_stimulus(30, 16.0) if o is None else curve_stimulus(o, 10.0))
                t = t - t.mean()
                self.conv[0].weight[c] = t / t.norm()

    def forward(self, x):
        return self.conv(x)


LOOSE = {"min_peak_to_mean": 2.0, "max_half_width_deg": 60.0, "min_line_ratio": 1.2}


# ------------------------------------------------------------------ expanded weights

def test_expanded_weights_equal_the_chain():
    kernels = [randn(4, 3, 3, 3, seed=1), randn(5, 4, 1, 1, seed=2), randn(2, 5, 5, 3, seed=3)]
    x = randn(2, 3, 16, 16, seed=4)
    chain = x
    for k in kernels:
        chain = F.conv2d(chain, k)
    W = C.expanded_weights(kernels)
    assert W.shape == (2, 3, 7, 5)
    assert torch.allclose(F.conv2d(x, W), chain, atol=1e-3)
    assert torch.equal(C.expanded_weights([kernels[0]]), kernels[0])
    with pytest.raises(ValueError, match="forward order"):
        C.expanded_weights([kernels[1], kernels[0]])
    with pytest.raises(ValueError):
        C.expanded_weights([])


def test_layer_weights_of_the_lite_model_are_conv4s_kernels():
    W, below = C.layer_weights(lite(), "conv4")
    assert below == "conv3" and torch.equal(W, lite().conv4.weight.detach())
    with pytest.raises(ValueError):
        C.layer_weights(lite(), "conv1")


def test_layer_weights_through_inceptions_branches():
    model = inception()
    W, below = C.layer_weights(model, "mixed3b")
    assert below == "mixed3a" and W.shape == (480, 256, 5, 5)
    assert C.inception_channel(model, "mixed3b", 379) == {
        "branch": "5x5", "index": 59, "modules": ["mixed3b_5x5_bottleneck_pre_relu_conv", "mixed3b_5x5_pre_relu_conv"]}
    x = randn(1, 256, 9, 9, seed=5)
    with torch.no_grad():
        five = F.conv2d(F.conv2d(x, model.mixed3b_5x5_bottleneck_pre_relu_conv.weight),
                        model.mixed3b_5x5_pre_relu_conv.weight)
        three = F.conv2d(F.conv2d(x, model.mixed3b_3x3_bottleneck_pre_relu_conv.weight),
                         model.mixed3b_3x3_pre_relu_conv.weight)[:, :, 1:-1, 1:-1]
        one = F.conv2d(x, model.mixed3b_1x1_pre_relu_conv.weight)[:, :, 2:-2, 2:-2]
    got = F.conv2d(x, W)
    scale = five.abs().max()
    assert (got[:, 320:416] - five).abs().max() < 1e-4 * scale
    assert (got[:, 128:320] - three).abs().max() < 1e-4 * three.abs().max()
    assert (got[:, :128] - one).abs().max() < 1e-4 * one.abs().max()
    # the dog-head circuit (Olah et al., Zoom In, 2020) and the polysemantic 4e:55
    assert C.inception_channel(model, "mixed4b", 418)["branch"] == "5x5"
    assert [C.inception_channel(model, "mixed4a", u)["branch"] for u in (222, 325, 234, 308)] == ["3x3"] * 4
    assert C.inception_channel(model, "mixed4e", 55)["branch"] == "1x1"
    assert C.layer_weights(model, "mixed4b")[1] == "mixed4a"


class _Block(torch.nn.Module):
    def __init__(self, identity=False):
        super().__init__()
        self.conv_a = torch.nn.Conv2d(4, 4, 3, bias=False)
        self.conv_b = torch.nn.Conv2d(4, 4, 3, bias=False)
        self.shortcut = torch.nn.Identity() if identity else torch.nn.Conv2d(4, 4, 1, bias=False)


class _Residual(torch.nn.Module):
    layer_names = ("conv1", "conv2")

    def __init__(self, identity=False):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 4, 3)
        self.conv2 = _Block(identity)


@pytest.mark.parametrize("identity", [False, True])
def test_layer_weights_of_a_residual_block_add_both_paths(identity):
    torch.manual_seed(0)
    model = _Residual(identity)
    W, below = C.layer_weights(model, "conv2")
    assert below == "conv1" and W.shape == (4, 4, 5, 5)
    x = randn(1, 4, 11, 11, seed=6)
    with torch.no_grad():
        expected = model.conv2.conv_b(model.conv2.conv_a(x)) + model.conv2.shortcut(x)[:, :, 2:-2, 2:-2]
    assert torch.allclose(F.conv2d(x, W), expected, atol=1e-4)


def test_top_inputs_and_weights_by_orientation():
    totals = torch.tensor([[1.0, -2.0, 3.0, -2.0, 0.0]])
    got = C.top_inputs(totals, 0, k=2)
    assert got == {"excitatory": [(2, 3.0), (0, 1.0)], "inhibitory": [(1, -2.0), (3, -2.0)]}
    assert C.top_inputs(totals[:, :, None, None].expand(1, 5, 2, 2) / 4, 0, k=1)["excitatory"] == [(2, 3.0)]
    with pytest.raises(ValueError):
        C.top_inputs(totals, 1)
    assert C.orientation_difference(350, 10) == 20 and C.orientation_difference(0, 180) == 180
    pairs = C.weights_by_orientation(torch.tensor([[3.0, 1.0, -2.0]]), [0], [0.0], [0, 1, 2], [10.0, 90.0, 180.0])
    assert pairs["difference"] == [10.0, 90.0, 180.0] and pairs["correlation"] < -0.9


# ------------------------------------------------------------------ rotation and equivariance

def arcs(step=15):
    return C.disc_mask(torch.stack([curve_stimulus(o, 10.0) for o in range(0, 360, step)]))


def test_disc_mask_and_rotation():
    from mi_course.organisms.images import class_images

    x = C.disc_mask(class_images("shape", 4, seed=1))
    corner = x[:, :, :1, :1]
    for patch in (x[:, :, :6, :6], x[:, :, -6:, :6], x[:, :, -6:, -6:]):  # the outside is one colour
        assert torch.allclose(patch, corner.expand_as(patch))
    assert torch.allclose(C.rotate_images(x, 0), x, atol=1e-6)
    assert torch.allclose(C.rotate_images(x, 90), torch.rot90(x, 1, (-2, -1)), atol=1e-5)  # counter-clockwise
    # an arc bulging right (0 degrees), rotated by 90 degrees counter-clockwise, bulges up
    right = C.disc_mask(curve_stimulus(0, 10.0)[None])
    up = C.disc_mask(curve_stimulus(90, 10.0)[None])
    assert (C.rotate_images(right, 90) - up).abs().max() < 1e-5


def test_equivariance_map_of_exact_rotated_copies():
    model = Matched([0, 90, 180, 270])
    M = C.equivariance_map(model, "conv", [0, 1, 2, 3], [0, 90, 180, 270], arcs())
    assert M.min() > 0.999
    plain = C.equivariance_map(model, "conv", [0, 1], [0, 0], arcs())
    assert plain[0, 1] < 0
    wrong = C.equivariance_map(model, "conv", [0, 1], [0, -90], arcs())
    assert wrong[0, 1] < 0.7
    with pytest.raises(ValueError):
        C.equivariance_map(model, "conv", [0, 1], [0], arcs())


def test_kernel_rotation_map_finds_exact_rot90_copies():
    base = randn(1, 5, 3, 3, seed=7)
    weights = torch.cat([base, torch.rot90(base, 1, (-2, -1)), randn(1, 5, 3, 3, seed=8)])
    M = C.kernel_rotation_map(weights, [0, 1, 2], [0.0, 90.0, 0.0])
    assert M[0, 1] > 0.999 and abs(M[0, 2]) < 0.9


# ------------------------------------------------------------------ union, polysemanticity

def test_union_over_cases_by_hand():
    totals = torch.tensor([[2.0, 1.0, 0.5, 0.1], [1.0, 1.0, -1.0, -1.0], [-2.0, -1.0, 1.0, 1.0]])
    got = C.union_over_cases(totals, 0, [0, 1], [2, 3], out_a=[1], out_b=[2])
    assert got["excitation"] == pytest.approx((1.5, 0.3)) and got["union"]
    assert got["inhibition"] == pytest.approx((-1.5, -1.0)) and got["mutual_inhibition"]
    assert C.union_over_cases(totals, 1, [0, 1], [2, 3])["union"] is False
    with pytest.raises(ValueError):
        C.union_over_cases(totals, 0, [0, 1], [1, 2])
    with pytest.raises(ValueError):
        C.union_over_cases(totals, 0, [0], [2], out_a=[1])


def test_case_units_and_mirror_split():
    model = Matched([0, 180, 45, 135])  # 0 and 180, 45 and 135 are mirror images of each other
    renders = torch.stack([curve_stimulus(o, 10.0) for o in (0, 180, 45, 135)])
    a, b = C.mirror_split(model, "conv", [0, 1, 2, 3], renders)
    assert {frozenset(p) for p in zip(a, b)} == {frozenset((0, 1)), frozenset((2, 3))}
    cases = C.case_units(model, "conv", renders[:1], renders[1:2], min_ratio=2.0, min_response=0.0)
    assert 0 in cases["a"] and 1 in cases["b"]


def test_polysemanticity_report_and_responds_to_both():
    responses = torch.tensor([[4.0, 0.0, 1.0], [0.1, 3.0, 1.0], [4.0, 0.0, 1.0], [0.1, 0.0, 1.0]])
    labels = torch.tensor([0, 1, 2, 3])
    got = C.polysemanticity_report(responses, labels, ["w", "x", "y", "z"])
    assert got["responds_to"] == [["w", "y"], ["x"], []] and got["polysemantic"] == [0]
    both = C.responds_to_both(responses, labels, ["w", "x", "y", "z"], 0, "w", "y")
    assert both["holds"] and both["ratio"][0] == pytest.approx(4.0 / 0.1)
    with pytest.raises(ValueError, match="at least one image"):
        C.polysemanticity_report(responses, torch.tensor([0, 1, 2, 2]), ["w", "x", "y", "z"])
    assert frozenset(("circle", "fish")) in C.SHARED_PARTS and frozenset(("circle", "shape")) not in C.SHARED_PARTS


# ------------------------------------------------------------------ universality

def test_orientation_histogram_bins_are_centred():
    assert C.orientation_histogram([0, 22, 23, 40, 350, 337.5, 315]) == [4, 2, 0, 0, 0, 0, 0, 1]


def test_compare_tuning_across_models_with_known_orientations():
    got = C.compare_tuning_across_models([("A", Matched([0, 90, 180, 270, None]), "conv"),
                                          ("B", Matched([10, 100]), "conv")], thresholds=LOOSE)
    assert got["models"]["A"]["curve_detectors"] == [0, 1, 2, 3]
    assert got["models"]["A"]["histogram"] == [1, 0, 1, 0, 1, 0, 1, 0]
    assert got["matching"]["B"]["A"] == pytest.approx(10.0)
    assert got["matching"]["A"]["B"] == pytest.approx((10 + 10 + 80 + 100) / 4)
    with pytest.raises(ValueError):
        C.compare_tuning_across_models([("A", lite(), "conv4"), ("A", lite(), "conv4")])


def test_universality_set_lists_the_shipped_lite_roles():
    roles = C.universality_set("lite")
    assert ("vision", "conv4") in roles and ("vision-b", "conv4") in roles
    assert all(mi_course.models.registry.lite_shipped(r) for r, _ in roles)
    full = dict(C.universality_set("full"))
    assert full["vision"] == "mixed3b"


def test_plots_draw_without_error():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = C.plot_weight_images(lite().conv4.weight, 0, [1, 2, 3], renders=torch.rand(3, 3, 8, 8))
    plt.close(fig)
    fig = C.plot_preferred_orientations({"models": {"a": {"preferred_deg": {0: 10.0}}, "b": {"preferred_deg": {}}}})
    plt.close(fig)


# ------------------------------------------------------------------ lesson 04's claims on the shipped models

@cache
def drawn_preferred(layer: str) -> dict:
    """Every channel's preferred orientation on PIL-drawn arcs (mi_course.vision.drawn), not the course's own
    stimulus generator: three radii, both polarities."""
    from mi_course.vision.drawn import drawn_curve

    orientations = list(range(0, 360, 5))
    stim = torch.stack([drawn_curve(o, r, 2.5, 64, p) for o in orientations for r in (6, 10, 14)
                        for p in ("dark", "light")])
    resp = channel_responses(lite(), stim, layer).view(len(orientations), 6, -1).amax(1)
    return {c: float(orientations[int(resp[:, c].argmax())]) for c in range(resp.shape[1])}


def test_claim_curve_detectors_are_excited_by_similar_curves_and_inhibited_by_opposite_ones():
    """Curve Circuits (Cammarata et al., 2021), in the lite model: the total weight from conv3's curve detectors
    into the planted conv4 ones falls as their orientations (measured on PIL-drawn arcs) differ."""
    model = lite()
    below = curve_detector_report(model, "conv3")["curve_detectors"]
    p3, p4 = drawn_preferred("conv3"), drawn_preferred("conv4")
    pairs = C.weights_by_orientation(model.conv4.weight, list(range(8)), [p4[u] for u in range(8)], below,
                                     [p3[c] for c in below])
    assert len(below) >= 6
    assert pairs["correlation"] < -0.3, pairs["correlation"]


@cache
def fresh_probe():
    from mi_course.organisms.images import class_images

    return C.disc_mask(torch.cat([class_images("arc", 32, seed=9501), class_images("circle", 16, seed=9502),
                                  class_images("line", 16, seed=9503)]))


def test_claim_planted_and_natural_curve_detectors_are_rotated_copies():
    """Naturally Occurring Equivariance (Olah et al., 2020), in the lite model: rotating the input by the
    difference of preferred orientations (from PIL-drawn arcs) makes the detectors' responses agree, for the
    planted detectors and for those the task made; rotating the 3x3 kernels does not find the copies."""
    model, pref = lite(), drawn_preferred("conv4")
    card = mi_course.model_card("vision", mode="lite")
    natural = [c for c in card["mechanism"]["curve_detectors"]["channels"] if c >= 8][:6]
    for channels in (list(range(8)), natural):
        off = ~torch.eye(len(channels), dtype=torch.bool)
        rotated = C.equivariance_map(model, "conv4", channels, [pref[c] for c in channels], fresh_probe())[off].mean()
        plain = C.equivariance_map(model, "conv4", channels, [0.0] * len(channels), fresh_probe())[off].mean()
        assert rotated > 0.8 and rotated > plain + 0.2, (channels, rotated, plain)
    off = ~torch.eye(8, dtype=torch.bool)
    assert C.kernel_rotation_map(model.conv4.weight, range(8), [pref[c] for c in range(8)])[off].mean() < 0.25


@pytest.mark.parametrize("seeds", [(5, 6), (31, 32)])
def test_claim_union_over_cases_in_the_weights(seeds):
    """Union over cases (Olah et al., Zoom In, 2020), in the lite model, with the case units measured on fresh
    fish: at least two of the card's pose-invariant units are excited by both pathways, and the pathways inhibit
    each other beyond the inputs' mean weight into conv4."""
    from mi_course.organisms.images import class_images

    model = lite()
    union = mi_course.model_card("vision", mode="lite")["mechanism"]["union_over_cases"]["pose_invariant_units"]
    left = class_images("fish", 96, seed=seeds[0], facing="left", fish_cases="species")
    right = class_images("fish", 96, seed=seeds[1], facing="right", fish_cases="species")
    c3 = C.case_units(model, "conv3", left, right, min_ratio=3.0)
    c4 = C.case_units(model, "conv4", left, right, min_ratio=1.3, exclude=union)
    weights = model.conv4.weight.detach()
    results = [C.union_over_cases(weights, u, c3["a"], c3["b"], c4["a"], c4["b"]) for u in union]
    assert sum(r["union"] for r in results) >= 2
    totals = weights.sum((2, 3))
    cross = results[0]["inhibition"]
    assert results[0]["mutual_inhibition"]
    assert cross[0] < totals[:, c3["a"]].mean() and cross[1] < totals[:, c3["b"]].mean()


def test_claim_polysemantic_units_on_fresh_images():
    """The report finds conv4 units that answer to several classes, and at least one answers to a pair that
    shares no part on a second set of fresh images too."""
    from itertools import combinations

    from mi_course.organisms.images import CLASSES, generate

    model = lite()
    images, labels, _ = generate(800, seed=9601, fish_cases="species")
    report = C.polysemanticity_report(channel_responses(model, images, "conv4"), labels, CLASSES)
    assert len(report["polysemantic"]) >= 10
    candidates = [(u, a, b) for u in report["polysemantic"] for a, b in combinations(report["responds_to"][u], 2)
                  if frozenset((a, b)) not in C.SHARED_PARTS]
    images2, labels2, _ = generate(800, seed=9602, fish_cases="species")
    responses2 = channel_responses(model, images2, "conv4")
    assert any(C.responds_to_both(responses2, labels2, CLASSES, u, a, b)["holds"] for u, a, b in candidates)


def test_claim_lite_models_share_their_curve_orientations():
    """Universality in the lite world: on stimuli other than the cards' (radii 8 and 12, stroke 2), every
    shipped lite model has curve detectors in all four quadrants and each one's orientations have counterparts
    in the others."""
    entries = [(role, lite(role), layer) for role, layer in C.universality_set("lite")]
    got = C.compare_tuning_across_models(entries, radii=(8.0, 12.0), width=2.0)
    for name, m in got["models"].items():
        assert m["quadrants"] == [0, 1, 2, 3], (name, m["preferred_deg"])
    for a, row in got["matching"].items():
        for b, d in row.items():
            assert d is not None and d < 30, (a, b, d)
