"""Graded tests for lesson 04 (circuits, motifs and universality).

Expected values come from another route than the reference solution: composed kernels checked by running
``F.conv2d`` with each kernel in sequence, weights built by hand with known totals (and spatial patterns that
make a ranking by the largest entry differ from one by the total), models built by hand whose channels are
exact rotated copies of one template (so their equivariance map is 1 by construction and their preferred
orientations are known), python loops over hand-made responses, the course's canonical
:mod:`mi_course.vision.circuits` and :mod:`mi_course.vision.tuning` as oracles on the shipped lite models (the
behaviour is compared, not the code), and, for the investigation, the lite model's responses to fresh images.
"""

from functools import cache

import pytest
import torch
import torch.nn.functional as F

import mi_course
from mi_course.grading.asserts import assert_close, assert_shape, call_unmutated, expect_value_error
from mi_course.grading.judge import drive

LESSON = "l04_circuits_and_universality"


@cache
def vision(role: str = "vision"):
    torch.set_num_threads(1)
    return mi_course.load_model(role, mode="lite", device="cpu")


def seeded(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- expanded_weights

def in_sequence(x, kernels):
    for k in kernels:
        x = F.conv2d(x, k)
    return x


def composed_without_flip(kernels):
    """The usual mistake: compose with a cross-correlation (F.conv2d) without flipping the second kernel."""
    out = kernels[0]
    for nxt in kernels[1:]:
        kh, kw = nxt.shape[-2:]
        out = F.conv2d(out.transpose(0, 1), nxt, padding=(kh - 1, kw - 1)).transpose(0, 1)
    return out


@pytest.mark.exercise("expanded_weights", points=2)
def test_expanded_weights_equal_the_chain_run_in_sequence(impl):
    k1, k2, k3 = seeded(4, 3, 3, 3, seed=1), seeded(5, 4, 5, 5, seed=2), seeded(2, 5, 1, 1, seed=3)
    x = seeded(2, 3, 17, 17, seed=4)
    got = call_unmutated(impl.expanded_weights, [k1, k2])
    assert isinstance(got, torch.Tensor), f"return a tensor, got {type(got).__name__}"
    if tuple(got.shape) == (3, 5, 7, 7):
        pytest.fail("the result is [in, out, ...]: expanded weights are [out_last, in_first, KH, KW], like a conv "
                    "weight (transpose back after composing)")
    if got.dim() == 4 and got.shape[:2] == (5, 3) and got.shape[-1] != 7:
        pytest.fail(f"the composed kernel is {got.shape[-2]} x {got.shape[-1]}: a 3x3 then a 5x5 kernel see a "
                    "3 + 5 - 1 = 7 pixel window (pad the composition by kernel size - 1, not kernel size // 2)")
    assert_shape(got, (5, 3, 7, 7), "expanded_weights([3x3 kernel 3->4, 5x5 kernel 4->5])")
    if torch.allclose(got, composed_without_flip([k1, k2]), atol=1e-4):
        pytest.fail("you composed the kernels with a cross-correlation (F.conv2d as it is): two cross-"
                    "correlations in a row make a true CONVOLUTION of their kernels: flip the second kernel "
                    "(k.flip(-2, -1)) before F.conv2d")
    assert_close(F.conv2d(x, got), in_sequence(x, [k1, k2]), "conv2d with your expanded weights", atol=1e-3,
                 hint="it must equal F.conv2d with the first kernel, then with the second (no padding)")
    three = impl.expanded_weights([k1, k2, k3])
    assert_shape(three, (2, 3, 7, 7), "expanded_weights of three kernels (3x3, 5x5, 1x1)")
    assert_close(F.conv2d(x, three), in_sequence(x, [k1, k2, k3]), "three kernels composed", atol=1e-3,
                 hint="compose them one after the other, in forward order")


@pytest.mark.exercise("expanded_weights", points=1)
def test_expanded_weights_keep_the_forward_order(impl):
    """Square channel counts, so that the wrong order also has a valid shape and must be caught by its values."""
    a, b = seeded(4, 4, 3, 3, seed=5), seeded(4, 4, 5, 1, seed=6)
    x = seeded(1, 4, 12, 12, seed=7)
    got = impl.expanded_weights([a, b])
    assert_shape(got, (4, 4, 7, 3), "expanded_weights([3x3, 5x1])")
    if torch.allclose(F.conv2d(x, got), in_sequence(x, [b, a]), atol=1e-3) and \
            not torch.allclose(F.conv2d(x, got), in_sequence(x, [a, b]), atol=1e-3):
        pytest.fail("the kernels are applied in the wrong order: kernels[0] is applied FIRST (forward order)")
    assert_close(F.conv2d(x, got), in_sequence(x, [a, b]), "the 3x3 then 5x1 chain", atol=1e-3,
                 hint="non-square kernels compose row size with row size and column size with column size")


@pytest.mark.exercise("expanded_weights", points=1)
def test_expanded_weights_through_inceptions_5x5_branch(impl):
    """mixed3b's 5x5 branch: a 1x1 bottleneck (256 -> 32) then a 5x5 convolution (32 -> 96). Channel 379 of
    mixed3b (a curve detector, Cammarata et al. 2020) is index 379 - 128 - 192 = 59 of that branch."""
    from mi_course.models.dry_run import inceptionv1

    model = inceptionv1()
    bottleneck, conv = model.mixed3b_5x5_bottleneck_pre_relu_conv.weight, model.mixed3b_5x5_pre_relu_conv.weight
    got = impl.expanded_weights([bottleneck, conv])
    assert_shape(got, (96, 256, 5, 5), "the expanded weights from mixed3a into mixed3b's 5x5 branch")
    x = seeded(1, 256, 9, 9, seed=8)
    expected = in_sequence(x, [bottleneck.detach(), conv.detach()])[:, 379 - 320]
    assert_close(F.conv2d(x, got[379 - 320:379 - 319])[:, 0], expected, "mixed3b:379's expanded weights",
                 atol=1e-3, rtol=1e-3, hint="the bottleneck is applied first, then the 5x5 kernel")


@pytest.mark.exercise("expanded_weights", points=1)
def test_expanded_weights_check_the_chain(impl):
    k = seeded(4, 3, 3, 3, seed=9)
    one = call_unmutated(impl.expanded_weights, [k])
    assert_close(one, k, "expanded_weights of one kernel", hint="a chain of one kernel is that kernel")
    expect_value_error(impl.expanded_weights, [], what="expanded_weights([])", expected="at least one kernel")
    expect_value_error(impl.expanded_weights, [k[0]], what="a 3-D kernel", expected="[out, in, kh, kw]")
    expect_value_error(impl.expanded_weights, [k, seeded(5, 3, 3, 3, seed=10)],
                       what="a second kernel that reads 3 channels after a first that writes 4",
                       expected="kernels[1].shape[1] == kernels[0].shape[0]")
    expect_value_error(impl.expanded_weights, [k, seeded(5, 4, 3, 3, seed=11).transpose(0, 1)],
                       what="a second kernel given as [in, out, kh, kw]", expected="each kernel [out, in, kh, kw]")


# ---------------------------------------------------------------- top_inputs

def with_totals(totals: torch.Tensor, spread: float = 3.0) -> torch.Tensor:
    """Kernels [out, in, 3, 3] with the given totals; each carries a zero-sum pattern (+s at one corner, -s at
    another) whose size grows with the input index, so the largest single entry ranks inputs differently."""
    out, n_in = totals.shape
    w = totals[:, :, None, None].expand(out, n_in, 3, 3) / 9
    w = w.clone()
    for i in range(n_in):
        s = spread * (n_in - i)
        w[:, i, 0, 0] += s
        w[:, i, 2, 2] -= s
    return w


TOTALS = torch.tensor([[1.0, 0.0, -1.0, 2.0, 0.0, 0.5],
                       [3.0, -2.0, 0.0, 5.0, -2.0, 1.0],
                       [0.0, 4.0, -3.0, -0.5, 6.0, -1.0],
                       [2.0, -4.0, 1.0, 0.0, 3.0, -6.0],
                       [0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
                       [-1.0, -2.0, -3.0, -4.0, -5.0, -6.0]])


@pytest.mark.exercise("top_inputs", points=2)
def test_top_inputs_rank_total_weights_and_keep_their_sign(impl):
    weights = with_totals(TOTALS)
    got = call_unmutated(impl.top_inputs, weights, 1, k=2)
    assert isinstance(got, dict) and set(got) >= {"excitatory", "inhibitory"}, \
        f"return a dict with 'excitatory' and 'inhibitory', got {got!r}"
    exc, inh = [tuple(p) for p in got["excitatory"]], [tuple(p) for p in got["inhibitory"]]
    assert all(isinstance(i, int) and not isinstance(i, bool) and isinstance(w, float) for i, w in exc + inh), \
        f"each entry is (input channel, total weight) as a Python int and float, got {exc + inh}"
    ids = [i for i, _ in exc]
    column = TOTALS[:, 1].tolist()  # what reading weights[:, 1] (the wrong axis) would rank
    if ids == sorted((i for i in range(6) if column[i] > 0), key=lambda i: (-column[i], i))[:2]:
        pytest.fail("you read column 1 (weights[:, 1]): unit 1's inputs are row 1, weights[1] ([out, in, ...])")
    if ids == [0, 1]:
        pytest.fail("you ranked by the largest single kernel entry: a connection's strength is its TOTAL weight, "
                    "the kernel summed over its positions")
    assert ids == [3, 0], f"unit 1's strongest excitatory inputs are 3 (total 5) and 0 (total 3), got {exc}"
    assert all(abs(w - e) < 1e-4 for (_, w), e in zip(exc, [5.0, 3.0])), f"the totals are 5 and 3, got {exc}"
    if any(w > 0 for _, w in inh):
        pytest.fail(f"inhibitory inputs keep their sign (negative totals), got {inh}")
    if [i for i, _ in inh] == [4, 1]:
        pytest.fail("inputs 1 and 4 tie at -2: at a tie the lower channel comes first")
    assert [i for i, _ in inh] == [1, 4], f"unit 1's inhibitory inputs are 1 and 4 (both -2), got {inh}"
    got = impl.top_inputs(weights, 3, k=5)
    exc, inh = [tuple(p) for p in got["excitatory"]], [tuple(p) for p in got["inhibitory"]]
    if 3 in [i for i, _ in exc + inh]:
        pytest.fail("input 3 has total weight 0: it neither excites nor inhibits, leave it out")
    assert [i for i, _ in exc] == [4, 0, 2], f"unit 3: excitatory 4 (3), 0 (2), 2 (1), got {exc}"
    assert [i for i, _ in inh] == [5, 1], f"unit 3: inhibitory 5 (-6) then 1 (-4), most negative first, got {inh}"
    got = impl.top_inputs(weights, 5, k=3)
    assert [tuple(p)[0] for p in got["inhibitory"]] == [5, 4, 3] and got["excitatory"] == [], \
        f"unit 5 has only negative inputs: no excitatory ones and the three most negative, got {got}"


@pytest.mark.exercise("top_inputs", points=1)
def test_top_inputs_of_a_linear_layer_the_shipped_model_and_bad_arguments(impl):
    got = impl.top_inputs(TOTALS, 2, k=1)
    assert [tuple(p)[0] for p in got["excitatory"]] == [4] and [tuple(p)[0] for p in got["inhibitory"]] == [2], \
        f"a [out, in] weight is used as it is: unit 2's top inputs are 4 (6) and 2 (-3), got {got}"
    model = vision()
    weights = model.conv4.weight.detach()
    got = impl.top_inputs(weights, 0, k=4)
    totals = weights[0].sum((1, 2)).tolist()
    by_python = sorted(range(len(totals)), key=lambda i: (-totals[i], i))
    assert [tuple(p)[0] for p in got["excitatory"]] == by_python[:4], \
        f"conv4:0's strongest conv3 inputs are {by_python[:4]}, got {got['excitatory']}"
    assert [tuple(p)[0] for p in got["inhibitory"]] == sorted(range(len(totals)), key=lambda i: (totals[i], i))[:4]
    for bad, what in [(128, "unit 128 of 128"), (-1, "unit -1"), (1.0, "unit 1.0")]:
        expect_value_error(impl.top_inputs, weights, bad, what=f"top_inputs(..., {what})", expected="a unit in range")
    expect_value_error(impl.top_inputs, weights, 0, k=0, what="k=0", expected="k >= 1")
    expect_value_error(impl.top_inputs, weights[0], 0, what="3-D weights", expected="[out, in, kh, kw] or [out, in]")


# ---------------------------------------------------------------- equivariance_map

class Magnitude(torch.nn.Module):
    """|x|: a template's match with either polarity (a hook on the layer sees it)."""

    def forward(self, x):
        return x.abs()


class RotatedCopies(torch.nn.Module):
    """Layer ``conv``: channel c matches a 90-degree arc bulging towards ``orientations[c]`` over the whole
    64-pixel image (either polarity). Channels 90 degrees apart are exact rotated copies (torch.rot90)."""

    def __init__(self, orientations=(0, 90, 180, 270), radius=10.0):
        super().__init__()
        from mi_course.vision.stimuli import curve_stimulus

        self.conv = torch.nn.Sequential(torch.nn.Conv2d(3, len(orientations), 64, bias=False), Magnitude())
        with torch.no_grad():
            for c, o in enumerate(orientations):
                t = 1 - curve_stimulus(o, radius)
                t = t - t.mean()
                self.conv[0].weight[c] = t / t.norm()

    def forward(self, x):
        return self.conv(x)


def _on_rotated_copies(impl, *args, **kwargs):
    """Driver (runs next to the learner's module): equivariance_map(RotatedCopies(), *args, **kwargs)."""
    return impl.equivariance_map(RotatedCopies(), *args, **kwargs)


def arcs(step=15, radius=10.0):
    from mi_course.vision.circuits import disc_mask
    from mi_course.vision.stimuli import curve_stimulus

    return disc_mask(torch.stack([curve_stimulus(o, radius) for o in range(0, 360, step)]))


@pytest.mark.exercise("equivariance_map", points=2)
def test_equivariance_map_finds_exact_rotated_copies(impl):
    images = arcs()
    got = call_unmutated(drive, impl, _on_rotated_copies, "conv", [0, 1, 2, 3], [0.0, 90.0, 180.0, 270.0], images)
    assert_shape(got, (4, 4), "equivariance_map of 4 channels")
    diag = got.diagonal()
    assert torch.allclose(diag, torch.ones(4), atol=1e-4), \
        f"the diagonal compares a channel with itself, unrotated: 1, got {diag.tolist()}"
    if got[0, 1] < 0.2:
        pytest.fail(f"M[0, 1] = {got[0, 1]:.2f} for channels that are exact copies rotated by 90 degrees: did you "
                    "rotate at all? Channel j reads the images rotated by preferred[j] - preferred[i]")
    if got[0, 1] < 0.9 and got[0, 2] > 0.99:
        pytest.fail(f"M[0, 1] = {got[0, 1]:.2f} but M[0, 2] = {got[0, 2]:.2f}: you rotate the wrong way. Rotate "
                    "COUNTER-clockwise by preferred[j] - preferred[i] (torchvision's rotate with a positive angle), "
                    "so that what channel i saw lands where channel j looks")
    assert got.min() > 0.99, (f"these channels are exact rotated copies: every entry should be 1, got\n{got}\n"
                              "rotate the images by preferred[j] - preferred[i] and correlate channel i's responses "
                              "to the originals with channel j's to the rotated ones")
    same = drive(impl, _on_rotated_copies, "conv", [0, 1], [0.0, 0.0], images)
    assert same[0, 1] < 0, (f"told that both channels prefer 0 degrees, nothing is rotated and channels 0 and 1 "
                            f"disagree: M[0, 1] should be negative here, got {same[0, 1]:.2f}")


@pytest.mark.exercise("equivariance_map", points=1)
def test_equivariance_map_on_the_shipped_model_against_the_course(impl):
    from mi_course.organisms.images import class_images
    from mi_course.vision import circuits

    model = vision()
    images = circuits.disc_mask(torch.cat([class_images("arc", 16, seed=61), class_images("line", 8, seed=62)]))
    channels, preferred = [0, 2, 5], [345.0, 95.0, 225.0]
    got = impl.equivariance_map(model, "conv4", channels, preferred, images)
    expected = circuits.equivariance_map(model, "conv4", channels, preferred, images)
    assert_shape(got, (3, 3), "equivariance_map of 3 channels")
    if not torch.allclose(got, expected, atol=2e-3) and torch.allclose(got, expected.T, atol=2e-3):
        pytest.fail("your map is the course's transposed: M[i, j] correlates channel i on the ORIGINAL images with "
                    "channel j on the images rotated by preferred[j] - preferred[i]")
    black = torch.empty(3, 3)  # the same map with the rotation's corners left black
    from torchvision.transforms.functional import InterpolationMode, rotate

    from mi_course.vision.tuning import channel_responses

    base = channel_responses(model, images, "conv4")
    for i in range(3):
        for j in range(3):
            turned = rotate(images, preferred[j] - preferred[i], interpolation=InterpolationMode.BILINEAR)
            r = channel_responses(model, turned, "conv4")
            black[i, j] = torch.corrcoef(torch.stack([base[:, channels[i]], r[:, channels[j]]]))[0, 1]
    if not torch.allclose(got, expected, atol=2e-3) and torch.allclose(got, black, atol=2e-3):
        pytest.fail("the rotated images have black corners: rotate images - corner colour, then add it back, so "
                    "the corners the rotation brings in match the disc's surround")
    assert_close(got, expected, "equivariance_map on conv4 of the shipped model", atol=2e-3,
                 hint="Pearson correlation over the images of channel_responses, max over positions")


@pytest.mark.exercise("equivariance_map", points=1)
def test_equivariance_map_checks_its_arguments(impl):
    images = arcs(step=60)
    expect_value_error(drive, impl, _on_rotated_copies, "conv", [0, 1], [0.0], images,
                       what="two channels and one orientation", expected="one preferred orientation per channel")
    expect_value_error(drive, impl, _on_rotated_copies, "conv", [], [], images, what="no channels")
    expect_value_error(drive, impl, _on_rotated_copies, "conv", [0, 4], [0.0, 90.0], images,
                       what="channel 4 of a 4-channel layer", expected="channels in the layer")


# ---------------------------------------------------------------- union_over_cases

def union_weights():
    """[5 out, 6 in] totals: inputs 0-1 are case a, 2-4 case b; unit 0 the union; units 1 (a) and 2 (b) the
    case units of the union layer; unit 3 excited by a only."""
    totals = torch.tensor([[2.5, 0.5, 0.6, 0.3, -0.3, 9.0],     # union: a mean 1.5, b mean 0.2
                           [1.0, 2.0, -0.9, -0.3, 0.6, 0.0],    # out a: from b mean -0.2
                           [-1.0, -3.0, 1.0, 2.0, 3.0, 0.0],    # out b: from a mean -2.0
                           [4.0, 4.0, -1.0, -1.0, 1.0, 0.0],    # a only: b mean -1/3
                           [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    return totals, with_totals(totals)


@pytest.mark.exercise("union_over_cases", points=2)
def test_union_over_cases_by_hand(impl):
    totals, weights = union_weights()
    got = call_unmutated(impl.union_over_cases, weights, 0, [0, 1], [2, 3, 4], out_a=[1], out_b=[2])
    assert isinstance(got, dict), f"return a dict, got {type(got).__name__}"
    exc = tuple(got["excitation"])
    if abs(exc[0] - 3.0) < 1e-4 or abs(exc[1] - 0.6) < 1e-4:
        pytest.fail(f"excitation {exc}: take the MEAN total weight over each case's inputs, not the sum (the "
                    "cases have different numbers of units)")
    transposed = (totals[[0, 1], 0].mean().item(), totals[[2, 3, 4], 0].mean().item())
    if abs(exc[0] - transposed[0]) < 1e-4 and abs(exc[1] - transposed[1]) < 1e-4:
        pytest.fail(f"excitation {exc}: you read column 0 (weights[:, inputs]): the weights INTO unit 0 are row 0, "
                    "weights[unit, inputs]")
    if max(abs(exc[0] - 1.5), abs(exc[1] - 0.2)) > 1e-4 and abs(exc[0]) > 2:
        pytest.fail(f"excitation {exc}: a connection's strength is its total weight, the kernel summed over its "
                    "positions, not its largest entry")
    assert abs(exc[0] - 1.5) < 1e-4 and abs(exc[1] - 0.2) < 1e-4, \
        f"unit 0 gets mean total weight 1.5 from case a's inputs and 0.2 from case b's, got {exc}"
    assert bool(got["union"]) is True, f"both pathways excite unit 0: union is True, got {got['union']}"
    inh = tuple(got["inhibition"])
    if abs(inh[0] + 0.2) < 1e-4 and abs(inh[1] + 2.0) < 1e-4:
        pytest.fail(f"inhibition {inh} is in the wrong order: (a_to_b, b_to_a), first case a's inputs into the "
                    "out_b units")
    assert abs(inh[0] + 2.0) < 1e-4 and abs(inh[1] + 0.2) < 1e-4, \
        f"case a into out_b: mean -2.0; case b into out_a: mean -0.2; got {inh}"
    assert bool(got["mutual_inhibition"]) is True, "both cross weights are negative: mutual_inhibition is True"
    one_sided = impl.union_over_cases(weights, 3, [0, 1], [2, 3, 4])
    if one_sided["union"]:
        pytest.fail("unit 3 is excited by case a (4) and inhibited by case b (-1/3): a union needs BOTH positive")
    assert one_sided["inhibition"] is None and one_sided["mutual_inhibition"] is None, \
        "without out_a and out_b there is nothing to say about inhibition: None"
    crossed = impl.union_over_cases(weights, 0, [0, 1], [2, 3, 4], out_a=[1], out_b=[3])
    if crossed["mutual_inhibition"]:
        pytest.fail("with out_b = [3], case a's inputs EXCITE the out_b unit (+4) while case b's inhibit out_a (-0.2): "
                    "mutual inhibition needs BOTH cross weights negative")


@pytest.mark.exercise("union_over_cases", points=1)
def test_union_over_cases_on_the_shipped_model_and_bad_arguments(impl):
    model = vision()
    weights = model.conv4.weight.detach()
    a, b, out_a, out_b = [1, 26, 32], [3, 24, 47], [8, 28], [51, 106]
    got = impl.union_over_cases(weights, 86, a, b, out_a=out_a, out_b=out_b)
    def total(o, i):
        return weights[o, i].sum().item()

    exc = (sum(total(86, i) for i in a) / 3, sum(total(86, i) for i in b) / 3)
    inh = (sum(total(o, i) for o in out_b for i in a) / 6, sum(total(o, i) for o in out_a for i in b) / 6)
    assert all(abs(x - y) < 1e-3 for x, y in zip(got["excitation"], exc)), \
        f"excitation {got['excitation']}, expected {exc}"
    assert all(abs(x - y) < 1e-3 for x, y in zip(got["inhibition"], inh)), \
        f"inhibition {got['inhibition']}, expected {inh}"
    expect_value_error(impl.union_over_cases, weights, 86, [], b, what="an empty case_a",
                       expected="units for each case")
    expect_value_error(impl.union_over_cases, weights, 86, [1, 3], [3, 24], what="a unit in both cases",
                       expected="the cases share no unit")
    expect_value_error(impl.union_over_cases, weights, 86, a, b, out_a=[8], what="out_a without out_b",
                       expected="both or neither")
    expect_value_error(impl.union_over_cases, weights, 128, a, b, what="unit 128 of 128", expected="a unit in range")
    expect_value_error(impl.union_over_cases, weights, 86, [1, 200], b, what="input 200 of 128",
                       expected="units in range")


# ---------------------------------------------------------------- polysemanticity_report

CLASSES5 = ["a", "b", "c", "d", "e"]
# class 0 has 5 images, the others one each: a mean over images and a mean over classes differ
LABELS5 = torch.tensor([0, 0, 0, 0, 0, 1, 2, 3, 4])


def hand_responses():
    """Images x units whose class means are set by hand (class 0's five images vary around their mean)."""
    means = torch.tensor([[4.0, 0.2, 4.0, 0.2, 0.2],     # unit 0: classes a and c (a tie: a first)
                          [0.0, 6.0, 1.0, 0.0, 0.0],     # unit 1: b only
                          [0.0, 0.0, 0.0, 0.0, 0.0],     # unit 2: silent
                          [1.5, 0.0, 0.0, 2.5, 1.0],     # unit 3: d, then a exactly at 1.5 x baseline (1.0)
                          [2.0, 2.4, 0.0, 0.0, 0.0],     # unit 4: b and a (baseline over classes 0.88)
                          [1.0, 1.0, 1.0, 1.0, 1.0]])    # unit 5: everything alike: nothing stands out
    rows = []
    for n, k in enumerate(LABELS5.tolist()):
        wobble = torch.tensor([0.5, -0.5, 0.25, -0.25, 0.0])[n] if k == 0 else 0.0
        rows.append(means[:, k] + wobble * (means[:, k] > 0))
    return torch.stack(rows), means


@pytest.mark.exercise("polysemanticity_report", points=2)
def test_polysemanticity_report_by_hand(impl):
    responses, means = hand_responses()
    got = call_unmutated(impl.polysemanticity_report, responses, LABELS5, CLASSES5)
    m = got["class_means"]
    if isinstance(m, torch.Tensor) and tuple(m.shape) == (5, 6):
        pytest.fail("class_means is [classes, units]: return it as [units, classes]")
    assert_close(m, means, "class_means", atol=1e-4, hint="unit u's mean response over the images of class k")
    r = [list(x) for x in got["responds_to"]]
    assert len(r) == 6, f"responds_to has one list per unit (6), got {len(r)}"
    if r[2]:
        pytest.fail(f"unit 2 never responds but you list {r[2]}: a class needs a POSITIVE mean (0 >= 2 x 0 holds)")
    if r[4] == ["b"]:
        pytest.fail("unit 4 (class means 2, 2.4, 0, 0, 0) responds to b and a: the baseline is the mean over the 5 "
                    "CLASS means (0.88), not over the 9 images (1.38), where class a's five images weigh 5 times")
    if r[0] == ["c", "a"]:
        pytest.fail("unit 0's classes a and c tie at 4.0: at a tie the lower class index comes first")
    if r[3] == ["d"]:
        pytest.fail("unit 3's class a mean (1.5) is exactly min_ratio (1.5) x its baseline (1.0): 'at least' "
                    "includes equality")
    if r[3] == ["a", "d"]:
        pytest.fail("list each unit's classes largest mean first: unit 3 is ['d', 'a']")
    expected = [["a", "c"], ["b"], [], ["d", "a"], ["b", "a"], []]
    assert r == expected, f"responds_to should be {expected}, got {r}"
    assert list(got["polysemantic"]) == [0, 3, 4], f"units 0, 3 and 4 respond to two classes, got {got['polysemantic']}"
    assert list(got["classes"]) == CLASSES5
    strict = impl.polysemanticity_report(responses, LABELS5, CLASSES5, min_share=0.9)
    assert [list(x) for x in strict["responds_to"]][4] == ["b"], \
        "with min_share=0.9 class a (2.0) is below 0.9 x unit 4's strongest class (2.4): use min_share"
    assert list(strict["polysemantic"]) == [0], \
        f"with min_share=0.9 only unit 0 keeps two classes, got {strict['polysemantic']}"


@pytest.mark.exercise("polysemanticity_report", points=1)
def test_polysemanticity_report_on_the_shipped_model_and_bad_arguments(impl):
    from mi_course.organisms.images import CLASSES, generate
    from mi_course.vision import circuits
    from mi_course.vision.tuning import channel_responses

    images, labels, _ = generate(300, seed=71, fish_cases="species")
    responses = channel_responses(vision(), images, "conv4")
    got = impl.polysemanticity_report(responses, labels, CLASSES)
    expected = circuits.polysemanticity_report(responses, labels, CLASSES)
    assert [list(x) for x in got["responds_to"]] == expected["responds_to"], "responds_to differs from the course's"
    assert list(got["polysemantic"]) == expected["polysemantic"]
    responses5, _ = hand_responses()
    expect_value_error(impl.polysemanticity_report, responses5, LABELS5[:-1], CLASSES5,
                       what="8 labels for 9 images", expected="one label per image")
    expect_value_error(impl.polysemanticity_report, responses5, LABELS5.clamp(max=3), CLASSES5,
                       what="no image of class 'e'", expected="every class has an image")
    expect_value_error(impl.polysemanticity_report, responses5, LABELS5 + 1, CLASSES5,
                       what="a label 5 with 5 classes", expected="labels in [0, 5)")
    expect_value_error(impl.polysemanticity_report, responses5[:, 0], LABELS5, CLASSES5,
                       what="1-D responses", expected="[images, units]")


# ---------------------------------------------------------------- polysemantic_unit (investigation)

@pytest.mark.exercise("polysemantic_unit", points=3)
def test_polysemantic_unit_responds_to_two_unrelated_classes_on_fresh_images(impl):
    """Graded by what the unit does: on images the learner did not see (another seed), its mean response to
    each named class is at least twice its mean over the other classes and at least half its strongest class."""
    from mi_course.organisms.images import CLASSES, generate
    from mi_course.vision.circuits import SHARED_PARTS, responds_to_both
    from mi_course.vision.tuning import channel_responses

    model = vision()
    answer = impl.polysemantic_unit(model)
    assert isinstance(answer, (tuple, list)) and len(answer) == 3, f"return (unit, class_a, class_b), got {answer!r}"
    unit, a, b = answer
    assert isinstance(unit, int) and not isinstance(unit, bool) and 0 <= unit < 128, \
        f"the unit is a Python int in [0, 128) (conv4 has 128 channels), got {unit!r}"
    assert a in CLASSES and b in CLASSES and a != b, f"name two different classes of {CLASSES}, got {a!r}, {b!r}"
    assert frozenset((a, b)) not in SHARED_PARTS, (
        f"{a} and {b} share parts as the generator draws them (SHARED_PARTS): a unit for that part would answer "
        "to both. Find a pair that shares none")
    images, labels, _ = generate(2000, seed=31337, fish_cases="species")
    result = responds_to_both(channel_responses(model, images, "conv4"), labels, CLASSES, unit, a, b)
    assert result["holds"], (
        f"on fresh images conv4:{unit} responds to {a} and {b} at {result['ratio'][0]:.2f}x and "
        f"{result['ratio'][1]:.2f}x its mean over the other classes (2x needed), with {result['share'][0]:.0%} and "
        f"{result['share'][1]:.0%} of its strongest class (50% needed)")


# ---------------------------------------------------------------- compare_tuning_across_models

LOOSE = {"min_peak_to_mean": 2.0, "max_half_width_deg": 60.0, "min_line_ratio": 1.2}


class KnownCurves(torch.nn.Module):
    """Layer ``conv``: channels matched to arcs of known orientations (curve detectors by construction) and one
    matched to a straight segment (not a curve detector)."""

    def __init__(self, orientations):
        super().__init__()
        from mi_course.vision.stimuli import curve_stimulus, line_stimulus

        self.conv = torch.nn.Sequential(torch.nn.Conv2d(3, len(orientations) + 1, 64, bias=False), Magnitude())
        with torch.no_grad():
            templates = [1 - curve_stimulus(o, 10.0) for o in orientations] + [1 - line_stimulus(30, 16.0)]
            for c, t in enumerate(templates):
                t = t - t.mean()
                self.conv[0].weight[c] = t / t.norm()

    def forward(self, x):
        return self.conv(x)


def _on_known_curves(impl, entries, *args, **kwargs):
    """Driver (runs next to the learner's module): compare_tuning_across_models on entries (name, orientations,
    layer), each model built as KnownCurves(orientations)."""
    models = [(name, KnownCurves(orientations), layer) for name, orientations, layer in entries]
    return impl.compare_tuning_across_models(models, *args, **kwargs)


@pytest.mark.exercise("compare_tuning_across_models", points=2)
def test_compare_tuning_across_models_with_known_orientations(impl):
    a, b = [0, 40, 90, 180, 270, 350], [20, 200]  # KnownCurves(a), KnownCurves(b), built by the driver
    got = call_unmutated(drive, impl, _on_known_curves, [("A", a, "conv"), ("B", b, "conv")], thresholds=LOOSE)
    assert isinstance(got, dict) and set(got) >= {"models", "matching"}, "return {'models': ..., 'matching': ...}"
    A, B = got["models"]["A"], got["models"]["B"]
    if 6 in A["curve_detectors"]:
        pytest.fail("channel 6 matches a straight segment: it is not a curve detector. Did you pass **kwargs "
                    "(the thresholds) on to curve_detector_report?")
    assert list(A["curve_detectors"]) == [0, 1, 2, 3, 4, 5], f"A's curve detectors are 0-5, got {A['curve_detectors']}"
    got_pref = {int(k): float(v) for k, v in A["preferred_deg"].items()}
    assert got_pref == {0: 0.0, 1: 40.0, 2: 90.0, 3: 180.0, 4: 270.0, 5: 350.0}, \
        f"preferred_deg holds the curve detectors' orientations (0, 40, 90, 180, 270, 350), got {got_pref}"
    assert A["layer"] == "conv" and A["n_channels"] == 7, "keep each model's layer and its number of channels"
    hist = list(A["histogram"])
    floored = [sum(1 for d in (0, 40, 90, 180, 270, 350) if int(d // 45) == k) for k in range(8)]
    if hist == floored:
        pytest.fail("the bins start at 0 (floor(deg / 45)): they are CENTRED on 0, 45, ...: 40 is in bin 1, 350 in "
                    "bin 0")
    assert hist == [2, 1, 1, 0, 1, 0, 1, 0], \
        f"A's histogram (bins centred on 0, 45, ..., 315) is [2, 1, 1, 0, 1, 0, 1, 0], got {hist}"
    assert list(A["quadrants"]) == [0, 1, 2, 3] and list(B["quadrants"]) == [0, 2]
    m = got["matching"]
    # A -> B: nearest of 20, 200 to 0, 40, 90, 180, 270, 350: 20, 20, 70, 20, 70, 30 -> 230 / 6
    ab, ba = m["A"]["B"], m["B"]["A"]
    straight = sum(min(abs(x - y) for y in (20, 200)) for x in (0, 40, 90, 180, 270, 350)) / 6
    if abs(ab - straight) < 1e-6:
        pytest.fail(f"matching['A']['B'] = {ab:.2f}: measure angles the short way round the circle (350 and 20 are "
                    "30 degrees apart)")
    if abs(ab - 20.0) < 1e-6:
        pytest.fail("matching['A']['B'] is over A's detectors (each to its nearest in B), not over B's")
    assert abs(ab - 230 / 6) < 1e-4, \
        f"matching['A']['B'] = mean over A's detectors of the distance to B's nearest = 38.33, got {ab}"
    assert abs(ba - 20.0) < 1e-4, f"matching['B']['A'] = (20 + 20) / 2 = 20, got {ba}"
    assert "A" not in m["A"], "matching compares different models only"
    none = drive(impl, _on_known_curves, [("A", a, "conv"), ("flat", [], "conv")], thresholds=LOOSE)
    assert none["matching"]["A"]["flat"] is None and none["matching"]["flat"]["A"] is None, \
        "with no detectors in one model there is nothing to match: None"


@pytest.mark.exercise("compare_tuning_across_models", points=1)
def test_compare_tuning_across_models_on_the_shipped_models(impl):
    from mi_course.vision.tuning import curve_detector_report

    entries = [("vision", vision(), "conv4"), ("vision-b", vision("vision-b"), "conv4")]
    got = impl.compare_tuning_across_models(entries)
    for name, model, layer in entries:
        report = curve_detector_report(model, layer)
        assert list(got["models"][name]["curve_detectors"]) == report["curve_detectors"], \
            f"{name}: the curve detectors should be curve_detector_report's, {report['curve_detectors']}"
    strict = impl.compare_tuning_across_models(entries[:1], thresholds={"min_peak_to_mean": 4.0})
    assert list(strict["models"]["vision"]["curve_detectors"]) == \
        curve_detector_report(entries[0][1], "conv4", thresholds={"min_peak_to_mean": 4.0})["curve_detectors"], \
        "keyword arguments (thresholds=...) go on to curve_detector_report"
    expect_value_error(impl.compare_tuning_across_models, [], what="no models", expected="at least one entry")
    expect_value_error(impl.compare_tuning_across_models, [entries[0], ("vision", vision("vision-b"), "conv4")],
                       what="two models named 'vision'", expected="unique names")
