"""A lite language model's card says how to regenerate it: that command, read by its script's own option
parser, must resolve to the run the card describes (steps, batch, repeated-span rows), so that the one
documented command rebuilds the shipped organism and not a cousin trained with other defaults."""

import re

import pytest

import mi_course
from mi_course.models.checkpoints import regenerate_script
from mi_course.models.registry import lite_shipped

ROLES = {"attn-only-1l": "train_attn_only.py", "attn-only-2l": "train_attn_only.py", "lm": "train_lm.py"}


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
        assert f"phase 2 on {args.ioi_documents:,} documents" in card["data"]


def test_regenerate_script_wants_a_python_scripts_line():
    with pytest.raises(ValueError, match="python scripts/<name>.py"):
        regenerate_script({"regenerate": "make lm"})
