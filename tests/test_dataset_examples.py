"""Dataset examples and what they rest on: receptive fields (worked out by hand and measured with gradients),
the activation probe (InceptionV1's input scaling, the forward pass stopping at the layer), top examples on a
hand-made layer whose units are known, and curvature tuning with its stimuli."""

import math

import pytest
import torch

import mi_course
from mi_course.vision import stimuli, tuning
from mi_course.vision.activations import channel_responses, input_scaling, layer_activations
from mi_course.vision.dataset_examples import dataset_examples, image_maxima, top_examples
from mi_course.vision.receptive_field import (
    ReceptiveField,
    crop_box,
    layer_geometry,
    measured_receptive_field,
    receptive_field,
    receptive_field_of,
)


@pytest.fixture(scope="module")
def vision():
    torch.set_num_threads(1)
    return mi_course.load_model("vision", mode="lite", device="cpu")


# ---------------------------------------------------------------- receptive fields

def test_receptive_field_arithmetic_by_hand():
    assert receptive_field_of([]) == (1, 1, 0)
    assert receptive_field_of([(3, 1, 1)]) == (3, 1, -1)
    # conv 5 (pad 2), pool 2, conv 5 (pad 2), pool 2, conv 3 (pad 1), pool 2, conv 3 (pad 1): the lite vision model
    chain = [(5, 1, 2), (2, 2, 0), (5, 1, 2), (2, 2, 0), (3, 1, 1), (2, 2, 0), (3, 1, 1)]
    assert receptive_field_of(chain) == (44, 8, -18)   # 1 + 4 + 1 + 8 + 2 + 8 + 4 + 16
    assert receptive_field_of([(7, 2, 3), (3, 2, 1)]) == (11, 4, -5)


def test_lite_geometry_matches_a_gradient_measurement(vision):
    flags = [p.requires_grad for p in vision.parameters()]
    assert layer_geometry(vision, "conv4") == [(5, 1, 2), (2, 2, 0), (5, 1, 2), (2, 2, 0), (3, 1, 1), (2, 2, 0),
                                               (3, 1, 1)]
    for layer in ("conv1", "conv2", "conv3", "conv4"):
        assert receptive_field(vision, layer) == measured_receptive_field(vision, layer, size=128)
    with pytest.raises(ValueError, match="no convolution 'conv9'"):
        layer_geometry(vision, "conv9")
    assert sum(len(m._forward_hooks) for m in vision.modules()) == 0
    assert [p.requires_grad for p in vision.parameters()] == flags, "the measurement restores requires_grad"
    assert all(p.grad is None for p in vision.parameters()), "the measurement leaves no gradient on the weights"


def test_residual_blocks_count_as_two_convolutions():
    class Fake:
        config = {"convs": [{"name": "conv1", "kernel": 5, "pool": 2},
                            {"name": "conv2", "kernel": 3, "pool": 1, "block": "residual"}]}

    assert layer_geometry(Fake(), "conv2") == [(5, 1, 2), (2, 2, 0), (3, 1, 1), (3, 1, 1)]
    assert receptive_field_of(layer_geometry(Fake(), "conv2")) == (14, 2, -6)


def test_inceptionv1_mixed3b_field_is_the_widest_branchs(monkeypatch):
    """Worked out from the published architecture (Szegedy et al. 2015) and lucent's padding: conv 7 stride 2
    (pad 2), max pool 3 stride 2, conv 1, conv 3 (pad 1), max pool 3 stride 2, then two mixed layers whose widest
    branch is a 5x5 convolution (pad 2): 7 + 2 x 2 + 2 x 4 + 2 x 4 + 4 x 8 + 4 x 8 = 91 px, stride 8."""
    monkeypatch.setenv("MI_COURSE_DRY_RUN", "1")
    from mi_course.models import dry_run

    model = dry_run.inceptionv1()
    assert receptive_field(model, "mixed3b") == ReceptiveField(91, 8, -2 - 4 - 16 - 16)
    assert receptive_field(model, "mixed3b") is receptive_field(model, "mixed3b"), "measured once per model"
    with pytest.raises(ValueError, match="larger size"):
        measured_receptive_field(model, "mixed4a", size=128)


def test_crops_pad_with_fill_outside_the_image():
    image = torch.arange(2 * 4 * 5, dtype=torch.float32).view(2, 4, 5)
    crop = crop_box(image, (-1, 3, 2, 7), fill=-9.0)    # rows -1..1, columns 3..6
    assert crop.shape == (2, 3, 4)
    assert (crop[:, 0] == -9).all() and (crop[:, :, 2:] == -9).all()
    assert torch.equal(crop[:, 1:, :2], image[:, 0:2, 3:5])
    rf = ReceptiveField(4, 2, -1)
    assert rf.box(1, 2) == (1, 3, 5, 7)
    assert torch.equal(rf.crop(image, 0, 0, 0.0)[:, 1:, 1:], image[:, 0:3, 0:3])


# ---------------------------------------------------------------- the activation probe

class InceptionV1(torch.nn.Module):
    """Named like lucent's model, so the probe scales its input; it breaks after its first layer."""

    def __init__(self):
        super().__init__()
        self.first = torch.nn.Conv2d(3, 1, 1, bias=False)
        with torch.no_grad():
            self.first.weight.fill_(1.0)

    def forward(self, x):
        self.first(x)
        raise RuntimeError("the head needs 224-pixel inputs")


def test_the_probe_scales_inceptionv1s_input_and_stops_at_the_layer():
    x = torch.rand(3, 3, 5, 5)
    acts = layer_activations(InceptionV1(), x, "first")
    assert torch.allclose(acts, (x * 255 - 117).sum(1, keepdim=True), atol=1e-3), "x * 255 - 117, then the layer"
    assert torch.allclose(input_scaling(torch.nn.Identity())(x), x), "every other model takes [0, 1] as it is"
    model = InceptionV1()
    layer_activations(model, x, "first")
    assert not model.first._forward_hooks


# ---------------------------------------------------------------- dataset examples on a hand-made layer

class DarkBlocks(torch.nn.Module):
    """Unit (row, column) of channel c is the darkness of colour c over the 8 x 8 block it covers."""

    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.AvgPool2d(8)

    def forward(self, x):
        return self.blocks(1 - x)


def test_dataset_examples_on_a_hand_made_layer():
    images = torch.ones(4, 3, 32, 48)
    images[0, :, 9:11, 40:42] = 0.0          # block (1, 5), 4 dark pixels
    images[1, 0, 17:20, 2:5] = 0.0           # block (2, 0), 9 dark pixels, red channel only
    images[2, :, 0:2, 0:2] = 0.0             # block (0, 0), 4 dark pixels: ties image 0
    rf = ReceptiveField(16, 8, -4)
    ex = dataset_examples(DarkBlocks(), images, "blocks", 0, k=3, rf=rf)
    assert ex.indices.tolist() == [1, 0, 2], "the darkest block first; the tie between 0 and 2 to the earlier"
    assert ex.positions.tolist() == [[2, 0], [1, 5], [0, 0]], "(row, column) in the 4 x 6 map"
    assert torch.allclose(ex.values, torch.tensor([9, 4, 4]) / 64)
    # unit (1, 5) sees rows 4..19 and columns 36..51; the image ends at column 47
    assert torch.equal(ex.crops[1][:, :, :12], images[0, :, 4:20, 36:48]) and (ex.crops[1][:, :, 12:] == 0.5).all()
    assert (ex.crops[2][:, :4] == 0.5).all() and (ex.crops[2][:, :, :4] == 0.5).all(), "outside the image: fill"
    green = dataset_examples(DarkBlocks(), images, "blocks", 1, k=1, rf=rf)
    assert green.indices.tolist() == [0], "image 1 is dark in red only"
    many = top_examples(DarkBlocks(), images, "blocks", [0, 1], k=2, rf=rf, batch_size=3)
    assert many[0].indices.tolist() == [1, 0] and many[1].indices.tolist() == [0, 2]
    with pytest.raises(ValueError, match="k=5"):
        dataset_examples(DarkBlocks(), images, "blocks", 0, k=5, rf=rf)
    with pytest.raises(ValueError, match="channels must be ints in \\[0, 3\\)"):
        dataset_examples(DarkBlocks(), images, "blocks", 3, k=1, rf=rf)


def test_top_examples_on_the_lite_model_do_not_depend_on_the_batch_size(vision):
    from mi_course.vision.natural_images import lite_images

    images = lite_images(50)
    a = top_examples(vision, images, "conv4", [0, 3], k=5, batch_size=7)
    b = top_examples(vision, images, "conv4", [0, 3], k=5)
    for c in (0, 3):
        assert a[c].indices.tolist() == b[c].indices.tolist() and torch.equal(a[c].crops, b[c].crops)
        assert a[c].crops.shape == (5, 3, 44, 44) and a[c].rf == (44, 8, -18)
        maxima = layer_activations(vision, images, "conv4")[:, c].flatten(1).amax(1)
        assert torch.allclose(a[c].values, maxima.sort(descending=True).values[:5])
    values, where, shape = image_maxima(vision, images, "conv4", [3])
    assert shape == (8, 8) and values.shape == where.shape == (50, 1)


# ---------------------------------------------------------------- curvature

def test_curvature_stimulus_holds_the_length_and_tends_to_the_tangent():
    for curvature in (0.05, 0.1, 0.2):
        arc = stimuli.curvature_stimulus(30.0, curvature, length=16.0)
        radius = 1 / curvature
        assert torch.equal(arc, stimuli.curve_stimulus(30.0, radius, span_deg=math.degrees(16 * curvature)))
        ink = (1 - arc[0]).sum()
        assert 0.85 * 16 * 2.5 < ink < 1.3 * 16 * 2.5 + 5, f"an arc of 16 px holds about 40 px of ink, got {ink:.0f}"
    assert torch.equal(stimuli.curvature_stimulus(30.0, 0.0, 16.0), stimuli.line_stimulus(120.0, 16.0))
    nearly = stimuli.curvature_stimulus(30.0, 1e-4, 16.0)
    assert (nearly - stimuli.line_stimulus(120.0, 16.0)).abs().max() < 0.05, "curvature -> 0 is the tangent"
    with pytest.raises(ValueError, match="more than its circle"):
        stimuli.curvature_stimulus(0.0, 0.5, 16.0)
    with pytest.raises(ValueError, match="curvature"):
        stimuli.curvature_stimulus(0.0, -0.1)


def test_curvature_tuning_reads_the_stimuli_it_describes(vision):
    curve = tuning.curvature_tuning(vision, "conv4", 2, curvatures=(0.0, 0.1), orientation_deg=90.0,
                                    polarities=("dark",))
    batch = torch.stack([stimuli.curvature_stimulus(90.0, k) for k in (0.0, 0.1)])
    assert torch.allclose(curve, channel_responses(vision, batch, "conv4")[:, 2])
    preferred = tuning.ORIENTATIONS[int(tuning.radial_tuning_curve(vision, "conv4", 5).argmax())]
    assert torch.allclose(tuning.curvature_tuning(vision, "conv4", 5),
                          tuning.curvature_tuning(vision, "conv4", 5, orientation_deg=preferred))
    with pytest.raises(ValueError, match="channel"):
        tuning.curvature_tuning(vision, "conv4", 128, orientation_deg=0.0)
    with pytest.raises(ValueError, match=">= 0"):
        tuning.curvature_tuning(vision, "conv4", 0, curvatures=(-1.0,), orientation_deg=0.0)


def test_planted_detectors_prefer_curves_to_their_tangent_on_another_renderer(vision):
    """The lesson's curvature claim, on PIL-drawn arcs of 16 px (stroke 2 px, the lesson draws 2.5): every planted
    detector answers the straight segment with under a quarter of its best arc, and peaks at a radius of 7-14 px."""
    from mi_course.vision import drawn

    radii = (40.0, 28.0, 20.0, 14.0, 10.0, 7.0, 5.0)
    preferred = tuning.curve_detector_report(vision, "conv4")["preferred_deg"]
    for c in range(8):
        o = preferred[c]
        arcs = torch.stack([drawn.drawn_curve(o, r, 2.0, span_deg=math.degrees(16 / r), polarity=p)
                            for r in radii for p in ("dark", "light")])
        lines = torch.stack([drawn.drawn_line(o + 90, 16.0, 2.0, polarity=p) for p in ("dark", "light")])
        best = channel_responses(vision, arcs, "conv4")[:, c].view(len(radii), 2).amax(1)
        straight = channel_responses(vision, lines, "conv4")[:, c].max()
        assert straight < 0.25 * best.max(), (c, straight, best)
        assert 7.0 <= radii[int(best.argmax())] <= 14.0, (c, best)
