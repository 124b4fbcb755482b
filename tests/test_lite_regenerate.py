"""A lite language model's card says how to regenerate it: that command, read by its script's own option
parser, must resolve to the run the card describes (steps, batch, repeated-span rows), so that the one
documented command rebuilds the shipped organism and not a cousin trained with other defaults."""

import re

import pytest

import mi_course
from mi_course.models.checkpoints import regenerate_script
from mi_course.models.registry import lite_shipped

ROLES = {"attn-only-1l": "train_attn_only.py", "attn-only-2l": "train_attn_only.py", "lm": "train_lm.py",
         "greater-than": "train_greater_than.py"}


@pytest.mark.parametrize("role", ROLES)
def test_regenerate_command_resolves_to_the_run_on_the_card(role):
    if not lite_shipped(role):
        pytest.skip(f"{role} is not shipped")
    card = mi_course.model_card(role, mode="lite")
    assert card["regenerate"].startswith(f"python scripts/{ROLES[role]}"), card["regenerate"]
    script, argv = regenerate_script(card)
    args = script.options(argv)
    training = card["training"]
    assert (args.steps, args.batch_size, args.seed) == (training["steps"], training["batch_size"], training["seed"])
    # phase 1's rows: "<text> tokens plus <spans> tokens of ... a span of 5-<span_max> tokens recurs"
    text, spans = (int(n.replace(",", "")) for n in re.search(r"([\d,]+) tokens\)? plus ([\d,]+) tokens",
                                                               card["data"]).groups())
    assert spans / text == pytest.approx(args.span_fraction, rel=0.01), card["data"]
    assert f"a span of 5-{args.span_max} tokens recurs" in card["data"]
    if "ioi_phase" in training:
        phase = training["ioi_phase"]
        assert (args.ioi_steps, args.ioi_batch_size) == (phase["steps"], phase["batch_size"])
        assert re.search(rf"phase 2\b[^;]* on {args.ioi_documents:,} documents", card["data"]), card["data"]
    if "typo_phase" in training:
        phase = training["typo_phase"]
        assert (args.typo_steps, args.typo_lr) == (phase["steps"], phase["lr"])
        assert f"phase 3 on {args.typo_documents:,} code documents" in card["data"], card["data"]


def test_regenerate_script_wants_a_python_scripts_line():
    with pytest.raises(ValueError, match="python scripts/<name>.py"):
        regenerate_script({"regenerate": "make lm"})


@pytest.mark.parametrize("role", ["sae", "sae-b", "sae-relu", "sae-jumprelu", "sae-ortsae"])
def test_sae_regenerate_command_resolves_to_the_run_on_the_card(role):
    if not lite_shipped(role):
        pytest.skip(f"{role} is not shipped")
    card = mi_course.model_card(role, mode="lite")
    assert card["regenerate"].startswith("python scripts/train_saes.py"), card["regenerate"]
    script, argv = regenerate_script(card)
    args = script.options(argv)
    training, arch = card["training"], card["architecture"]
    lr = args.relu_lr if role == "sae-relu" else args.lr
    assert (args.steps, args.batch_size, lr) == (training["steps"], training["batch_size"], training["lr"])
    assert args.seed + (role == "sae-b") == training["seed"] == arch["seed"]
    assert args.d_sae == arch["d_sae"]
    assert f"generate_documents({args.train_docs}, seed={args.seed}, split='train')" in training["data"]
    coefficient = {"sae": ("k", args.k), "sae-b": ("k", args.k), "sae-relu": ("l1_coefficient", args.relu_l1),
                   "sae-jumprelu": ("l0_coefficient", args.jumprelu_l0),
                   "sae-ortsae": ("orthogonality_coefficient", args.ortsae_coefficient)}[role]
    assert arch[coefficient[0]] == coefficient[1], (role, coefficient)
