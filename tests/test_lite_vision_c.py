"""The lite organism ``vision-c``: a small residual CNN, the lite counterpart of ResNet-50 in lesson 04's
universality comparison. Every claim of its card is re-measured here on the shipped checkpoint, with the code
the training script used (mi_course.vision.tuning, mi_course.vision.drawn), and held to a threshold: the
file and its hashes, the architecture (residual blocks that use their skips), accuracy on images of a seed
the training never drew, the curve detectors that arose on their own in conv4 (none were planted), their
behaviour on arcs drawn by another renderer, and the union-over-cases measurement.
"""

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import mi_course
from mi_course.models import checkpoints
from mi_course.models.lite_vision import LiteCNN, ResidualBlock, ResidualCNN
from mi_course.models.registry import curve_layer, lite_shipped
from mi_course.organisms import images
from mi_course.paths import checkpoint_dir
from mi_course.vision import drawn
from mi_course.vision.tuning import THRESHOLDS, curve_detector_report, union_over_cases

ROLE = "vision-c"
pytestmark = pytest.mark.skipif(not lite_shipped(ROLE), reason=f"{ROLE} is not shipped")


@pytest.fixture(scope="module")
def shipped():
    torch.set_num_threads(1)
    model = mi_course.load_model(ROLE, mode="lite", device="cpu")
    return model, mi_course.model_card(ROLE, mode="lite")


@pytest.fixture(scope="module")
def report(shipped):
    model, card = shipped
    return curve_detector_report(model, card["mechanism"]["curve_detectors"]["layer"])


def _angle(a, b):
    d = abs(a - b) % 360
    return min(d, 360 - d)


# ---------------------------------------------------------------- the files


def test_files_are_listed_hashed_and_safetensors(shipped):
    model, _ = shipped
    manifest = checkpoints.read_manifest()
    folder = checkpoint_dir() / ROLE
    for name in ("config.json", "model.safetensors", "card.json", "metrics.json"):
        entry = manifest[f"{ROLE}/{name}"]
        assert checkpoints.sha256(folder / name) == entry["sha256"], f"{name} differs from the manifest"
    assert manifest[f"{ROLE}/model.safetensors"]["bytes"] <= 5 * 2 ** 20
    state = load_file(str(folder / "model.safetensors"))  # safetensors: tensors only, no pickle
    assert set(state) == set(model.state_dict())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert not any(".bn." in k for k in state), "BatchNorm is folded into the shipped convolutions"


# ---------------------------------------------------------------- the architecture


def test_architecture_is_a_residual_cnn_with_the_course_contract(shipped):
    model, card = shipped
    assert type(model) is ResidualCNN and isinstance(model, LiteCNN), "feature visualization treats it as lite"
    assert card["architecture"]["class"] == "mi_course.models.lite_vision.ResidualCNN"
    assert model.layer_names == ("conv1", "conv2", "conv3", "conv4") and tuple(model.classes) == images.CLASSES
    assert isinstance(model.conv1, nn.Conv2d) and model.conv1.padding_mode == "replicate", "a plain stem"
    for name in ("conv2", "conv3", "conv4"):
        assert isinstance(getattr(model, name), ResidualBlock)
    assert card["architecture"]["n_params_shipped"] == sum(p.numel() for p in model.parameters())
    names = {n for n, _ in model.named_modules()}
    assert set(card["architecture"]["hook_names"]) <= names and "conv4.conv_a" in names
    # the same four stages as vision's: 64 -> 32 -> 16 -> 8 -> 8
    x = torch.rand(2, 3, 64, 64)
    shapes = {}

    def record(name):
        def hook(module, inputs, output):
            shapes[name] = output.shape
        return hook

    hooks = [getattr(model, n).register_forward_hook(record(n)) for n in model.layer_names]
    try:
        with torch.no_grad():
            assert model(x).shape == (2, 10)
    finally:
        for h in hooks:
            h.remove()
    widths = [c["out"] for c in checkpoints.load_json(f"{ROLE}/config.json")["convs"]]
    assert [tuple(shapes[n][2:]) for n in model.layer_names] == [(64, 64), (32, 32), (16, 16), (8, 8)]
    assert [shapes[n][1] for n in model.layer_names] == widths


def test_blocks_compute_their_formula(shipped):
    model, _ = shipped
    block = model.conv4
    x = torch.rand(2, block.conv_a.in_channels, 8, 8)
    with torch.no_grad():
        assert torch.allclose(block(x), torch.relu(block.conv_b(block.conv_a(x)) + block.shortcut(x)))


def test_card_states_what_the_skip_connections_carry(shipped):
    """Cutting a block's shortcut costs accuracy, and cutting all of them most: the network routes through its
    skips (the card's numbers, re-measured with the script's own ablation)."""
    model, card = shipped
    script, _ = checkpoints.regenerate_script(card)
    stated = card["measured"]["skip_ablation"]
    before = [getattr(model, n).shortcut for n in ("conv2", "conv3", "conv4")]
    measured = script.skip_ablation(model, card["training"]["seed"], 64, card["dataset"]["fish_cases"])
    assert measured["images"] == stated["images"]
    assert measured["accuracy"] == pytest.approx(stated["accuracy"], abs=0.002)
    for name in ("conv2", "conv3", "conv4"):
        assert measured["without_shortcut"][name] == pytest.approx(stated["without_shortcut"][name], abs=0.002)
        assert measured["without_shortcut"][name] < measured["accuracy"], name
    assert measured["without_all_shortcuts"] == pytest.approx(stated["without_all_shortcuts"], abs=0.002)
    assert measured["without_all_shortcuts"] < measured["accuracy"] - 0.3
    assert [getattr(model, n).shortcut for n in ("conv2", "conv3", "conv4")] == before, "the skips are put back"


# ---------------------------------------------------------------- accuracy


def test_accuracy_on_images_the_training_never_drew(shipped):
    model, card = shipped
    x, y, _ = images.generate(500, seed=(987_654, 11), fish_cases=card["dataset"]["fish_cases"])
    with torch.no_grad():
        acc = (model(x).argmax(-1) == y).float().mean().item()
    assert acc >= 0.93, f"accuracy {acc:.3f} on 500 fresh images"


def test_card_accuracy_is_remeasured(shipped):
    model, card = shipped
    seed = card["training"]["seed"]
    assert card["measured"]["accuracy_images"] == f"generate(2000, seed=({seed}, 1000002))"
    x, y, _ = images.generate(2000, seed=(seed, 10 ** 6 + 2), fish_cases=card["dataset"]["fish_cases"])
    with torch.no_grad():
        acc = torch.cat([model(x[i:i + 500]).argmax(-1) for i in range(0, 2000, 500)]).eq(y).float().mean().item()
    assert acc == pytest.approx(card["measured"]["accuracy_2000_fresh_images"], abs=0.002)
    assert acc >= 0.95


# ---------------------------------------------------------------- how it was trained


def test_regenerate_line_is_the_residual_run_without_planted_detectors(shipped):
    _, card = shipped
    assert card["regenerate"].startswith(f"python scripts/train_vision.py --role {ROLE}")
    script, argv = checkpoints.regenerate_script(card)
    args = script.parse_args(argv)
    training = card["training"]
    assert (args.arch, args.aux_curve_units) == ("residual", 0), "universality: no planted curve units"
    assert (args.steps, args.batch_size, args.seed) == (training["steps"], training["batch_size"], training["seed"])
    assert training["aux_heads"]["curve_units"] is None and training["aux_heads"]["shipped"] is False
    assert card["dataset"]["fish_cases"] == args.fish_cases
    assert card["training_seconds"] <= 45 * 60
    with pytest.raises(SystemExit):
        script.parse_args(["--role", ROLE, "--aux-curve-units", "8"])


# ---------------------------------------------------------------- curve detectors


def test_curve_layer_is_the_registrys(shipped):
    _, card = shipped
    assert card["mechanism"]["curve_detectors"]["layer"] == curve_layer(ROLE, "lite") == "conv4"
    assert card["measured"]["best_curve_layer"] == "conv4"


def test_card_states_the_curve_detectors(shipped, report):
    _, card = shipped
    stated = card["measured"]["curve_detectors"][report["layer"]]
    assert stated["curve_detectors"] == report["curve_detectors"]
    assert {int(c): d for c, d in stated["preferred_deg"].items()} == report["preferred_deg"]
    assert stated["quadrants"] == report["quadrants"]
    assert stated["stretch_detectors"] == report["stretch_detectors"]
    assert stated["stretch_quadrants"] == report["stretch_quadrants"]
    mech = card["mechanism"]["curve_detectors"]
    assert mech["channels"] == report["curve_detectors"] and mech["stretch_channels"] == report["stretch_detectors"]
    for row in stated["detectors"]:
        measured = report["channels"][row["channel"]]
        for key in ("peak_to_mean", "half_width_deg", "line_ratio"):
            assert measured[key] == pytest.approx(row[key], rel=1e-3, abs=1e-3), (row["channel"], key)
    stretch = len(report["stretch_detectors"]) >= 4 and len(report["stretch_quadrants"]) == 4
    assert card["measured"]["stretch_goal_reached"] == stretch
    assert mech["planted_channels"] == [] and mech["arose_on_their_own"] == report["curve_detectors"]


def test_curve_detectors_arose_and_tile_the_circle(shipped, report):
    """The course's target (as for vision and vision-b): >= 4 detectors in >= 3 quadrants."""
    _, card = shipped
    assert len(report["curve_detectors"]) >= 4, report["curve_detectors"]
    assert len(report["quadrants"]) >= 3, report["quadrants"]
    assert not any("curve detectors:" in line for line in card["measured"]["not_reached"])


# ---------------------------------------------------------------- held-out stimuli (another renderer)


@pytest.fixture(scope="module")
def drawn_report(shipped, report):
    model, _ = shipped
    cases = {**drawn.VARIATIONS, **drawn.COMBINED}
    return drawn.robustness_report(model, report["layer"], report["curve_detectors"], cases)


def test_card_states_the_detectors_on_drawn_stimuli(shipped, report, drawn_report):
    _, card = shipped
    stated = card["measured"]["drawn_robustness"]
    assert stated["layer"] == report["layer"] and stated["cases"] == list({**drawn.VARIATIONS, **drawn.COMBINED})
    assert stated["passes_canonical"] == [c for c in report["curve_detectors"]
                                          if "canonical" in drawn_report[c]["passed"]]
    assert stated["robust_channels"] == [c for c in report["curve_detectors"] if len(drawn_report[c]["failed"]) <= 1]
    for c, entry in drawn_report.items():
        assert stated["channels"][str(c)]["failed"] == entry["failed"], c
        assert stated["channels"][str(c)]["preferred_deg_canonical"] == entry["preferred_deg"]["canonical"]


def test_detectors_keep_their_orientation_on_drawn_arcs(shipped, report, drawn_report):
    """On PIL-drawn canonical arcs (10 degrees apart) each detector prefers about the orientation it prefers on
    the course's own stimuli: the card's largest shift, re-measured, and at most 20 degrees."""
    _, card = shipped
    shifts = [_angle(drawn_report[c]["preferred_deg"]["canonical"], report["preferred_deg"][c])
              for c in report["curve_detectors"]]
    assert max(shifts) == card["measured"]["drawn_robustness"]["max_orientation_shift_deg"]
    assert max(shifts) <= 20, dict(zip(report["curve_detectors"], shifts))


# ---------------------------------------------------------------- union over cases


def test_card_states_union_over_cases(shipped):
    model, card = shipped
    mech = card["mechanism"]["union_over_cases"]
    seed, cases = card["training"]["seed"] + 10_000, card["dataset"]["fish_cases"]
    left = images.class_images("fish", 64, seed=seed, facing="left", fish_cases=cases)
    right = images.class_images("fish", 64, seed=seed + 1, facing="right", fish_cases=cases)
    others, labels, _ = images.generate(256, seed=seed + 2, fish_cases=cases)
    layer, prev = mech["pose_invariant_layer"], mech["case_layer"]
    assert (layer, prev) == ("conv4.conv_a", "conv3"), "a block's first convolution reads the layer before"
    res = union_over_cases(model, layer, prev, left, right, images_other=others[labels != images.FISH],
                           **card["measured"]["union_params"])
    stated = card["measured"]["union_over_cases"][layer]
    assert stated["union_units"] == res["union_units"] == mech["pose_invariant_units"]
    assert (stated["n_left_units"], stated["n_right_units"]) == (len(res["case_units"]["a"]),
                                                                 len(res["case_units"]["b"]))
    assert mech["reached"] == bool(card["measured"]["union_layers"])


def test_thresholds_are_the_courses(shipped):
    _, card = shipped
    assert card["measured"]["curve_thresholds"] == THRESHOLDS


# ---------------------------------------------------------------- feature visualization


def test_render_excites_a_residual_blocks_detector(shipped, report):
    """Feature visualization works through a residual block: its output ReLU (``conv4.relu``, a module) gets
    the redirected gradient too, so a channel silent on the grey starting image still moves the image."""
    from mi_course.vision.featurevis import render
    from mi_course.vision.tuning import channel_responses

    model, _ = shipped
    channel = report["curve_detectors"][0]
    image = render(model, f"conv4:{channel}", steps=64, size=64, progress=False)
    x, _, _ = images.generate(300, seed=(31_337, 1))
    best_in_data = channel_responses(model, x, "conv4")[:, channel].max().item()
    assert channel_responses(model, image, "conv4")[0, channel].item() > 0.5 * best_in_data
