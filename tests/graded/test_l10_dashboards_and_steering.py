"""Graded tests for lesson 10 (feature dashboards and steering).

Expected values come from another route than the reference solution: hand-made tensors with numbers worked
out by hand, loops over tokens, and, for generation, the course's canonical
:func:`mi_course.saes.steering.generate_with_steering` as an oracle (the behaviour is compared, not the code).
"""

from functools import cache

import pytest
import torch

import mi_course
from mi_course.grading.asserts import assert_close, assert_shape, call_unmutated, expect_value_error
from mi_course.grading.judge import drive
from mi_course.grading.secret_seed import learner_seeding, run_seed

LESSON = "l10_dashboards_and_steering"


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@cache
def lm():
    torch.set_num_threads(1)
    return mi_course.load_model("lm", mode="lite", device="cpu")


# ---------------------------------------------------------------- activation_histogram

@pytest.mark.exercise("activation_histogram", points=2)
def test_activation_histogram_hand_case_and_named_mistakes(impl):
    acts = torch.tensor([0.0, 0.0, 0.5, 1.0, 2.0, 0.0, 1.5, 2.0])
    out = call_unmutated(impl.activation_histogram, acts, bins=4)
    assert isinstance(out, tuple) and len(out) == 3, "return (counts, edges, density)"
    counts, edges, density = out
    assert_shape(counts, (4,), "counts")
    assert_shape(edges, (5,), "edges (bins + 1 of them)")
    assert_close(edges, torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0]), "edges",
                 hint="evenly spaced from 0 to the largest activation")
    counts = counts.tolist()
    if sum(counts) == 8:
        pytest.fail("counts sum to all 8 tokens: leave the zeros out, the histogram is of non-zero activations")
    # 0.5 on an inner edge goes right (bin 1), 1.0 to bin 2, 1.5 and both 2.0 (the maximum) to the last bin
    assert counts == [0, 1, 1, 3], f"counts {counts}, expected [0, 1, 1, 3]: a value on an inner edge belongs " \
                                   "to the bin on its right, and the maximum to the last bin"
    assert isinstance(density, float), f"density should be a Python float, got {type(density).__name__}"
    if abs(density - 5) < 1e-6:
        pytest.fail("density is the number of active tokens (5): divide by the number of all tokens")
    if abs(density - 1) < 1e-6:
        pytest.fail("density is 1: it is the fraction of *all* tokens that are active, not of the active ones")
    assert abs(density - 5 / 8) < 1e-6, f"density {density}, expected 5/8"


@pytest.mark.exercise("activation_histogram", points=1)
def test_activation_histogram_silent_feature_and_validation(impl):
    counts, edges, density = impl.activation_histogram(torch.zeros(6), bins=3)
    assert counts.tolist() == [0, 0, 0] and density == 0.0, "a feature that never fires: counts 0, density 0"
    assert_close(edges, torch.tensor([0.0, 1 / 3, 2 / 3, 1.0]), "edges of a silent feature", atol=1e-6,
                 hint="when nothing is positive the edges run from 0 to 1")
    counts, _, density = impl.activation_histogram(torch.tensor([-1.0, 3.0, 0.0, 3.0]), bins=2)
    assert counts.tolist() == [0, 2] and abs(density - 0.5) < 1e-6, "negative values are not active"
    expect_value_error(impl.activation_histogram, torch.ones(2, 3), what="activation_histogram of [2, 3]",
                       expected="one feature's activations, 1-D")
    expect_value_error(impl.activation_histogram, torch.ones(0), what="activation_histogram of an empty tensor")
    for bad in (0, 2.5):
        expect_value_error(impl.activation_histogram, torch.ones(3), bins=bad, what=f"bins={bad}",
                           expected="a positive int")


# ---------------------------------------------------------------- top_logit_effects

def loop_effect(direction, W_U):
    return torch.tensor([sum(direction[i].item() * W_U[i, j].item() for i in range(len(direction)))
                         for j in range(W_U.shape[1])])


@pytest.mark.exercise("top_logit_effects", points=2)
def test_top_logit_effects_against_a_loop_and_named_mistakes(impl):
    g = gen(0)
    d = 6  # square, so a transposed W_U has the right shape and only the values tell
    direction, W_U = torch.randn(d, generator=g), torch.randn(d, d, generator=g)
    out = call_unmutated(impl.top_logit_effects, direction, W_U, k=3)
    assert isinstance(out, tuple) and len(out) == 4, "return (top_values, top_ids, bottom_values, bottom_ids)"
    top_v, top_i, bot_v, bot_i = out
    effect = loop_effect(direction, W_U)
    down, up = effect.argsort(descending=True), effect.argsort()
    transposed = W_U @ direction
    if torch.allclose(top_v.float(), transposed.sort(descending=True).values[:3], atol=1e-4):
        pytest.fail("the effects come from W_U used transposed: direction @ W_U, with W_U [d_model, d_vocab]")
    assert_close(top_v, effect[down[:3]], "top_values", atol=1e-4, hint="the k largest of direction @ W_U, "
                                                                        "largest first")
    assert top_i.tolist() == down[:3].tolist(), f"top_ids {top_i.tolist()}, expected {down[:3].tolist()}"
    if torch.allclose(bot_v.float(), effect[down[:3]].flip(0), atol=1e-4) or \
            torch.allclose(bot_v.float(), -effect[up[:3]], atol=1e-4):
        pytest.fail("bottom_values are not the most negative effects (or their sign was flipped)")
    if torch.allclose(bot_v.float(), effect[up[:3]].flip(0), atol=1e-4):
        pytest.fail("bottom_values are in the wrong order: the most negative first")
    assert_close(bot_v, effect[up[:3]], "bottom_values", atol=1e-4, hint="the k smallest, most negative first")
    assert bot_i.tolist() == up[:3].tolist(), f"bottom_ids {bot_i.tolist()}, expected {up[:3].tolist()}"


@pytest.mark.exercise("top_logit_effects", points=1)
def test_top_logit_effects_ties_and_validation(impl):
    W_U = torch.tensor([[1.0, 2.0, 2.0, -1.0, -1.0, 0.0]])
    top_v, top_i, bot_v, bot_i = impl.top_logit_effects(torch.tensor([1.0]), W_U, k=2)
    assert top_i.tolist() == [1, 2] and bot_i.tolist() == [3, 4], \
        f"ties: the lower token id first (got top {top_i.tolist()}, bottom {bot_i.tolist()})"
    W_U = torch.randn(4, 9, generator=gen(1))
    for bad, what in ((torch.ones(2, 4), "a 2-D direction"), (torch.ones(5), "a direction of length 5 for W_U "
                                                                              "[4, 9]")):
        expect_value_error(impl.top_logit_effects, bad, W_U, what=f"top_logit_effects with {what}",
                           expected="direction [d_model] and W_U [d_model, d_vocab]")
    for k in (0, 10):
        expect_value_error(impl.top_logit_effects, torch.ones(4), W_U, k=k, what=f"k={k} with 9 tokens",
                           expected="k in 1..d_vocab")


# ---------------------------------------------------------------- max_activating_examples

@pytest.mark.exercise("max_activating_examples", points=2)
def test_max_activating_examples_positions_order_and_windows(impl):
    acts = torch.zeros(3, 7)
    acts[2, 1] = 5.0   # near the start of its row: the window is cut at 0
    acts[0, 6] = 4.0   # at the end of its row: cut at 7
    acts[1, 3] = 3.0
    acts[2, 5] = 1.0
    got = call_unmutated(impl.max_activating_examples, acts, k=3, context=2)
    assert isinstance(got, list) and len(got) == 3, f"k=3 examples as a list, got {type(got).__name__}"
    where = [(e["row"], e["pos"]) for e in got]
    if where[0] == (1, 2) or where[0] == (0, 5):
        pytest.fail(f"the first example is at {where[0]}: the flat index was unravelled with the wrong width; "
                    "row = i // n_pos, pos = i % n_pos")
    if where == [(2, 5), (1, 3), (0, 6)]:
        pytest.fail("examples are in ascending order: the largest activation comes first")
    assert where == [(2, 1), (0, 6), (1, 3)], f"examples at {where}, expected [(2, 1), (0, 6), (1, 3)]"
    assert [e["value"] for e in got] == [5.0, 4.0, 3.0]
    windows = [(e["start"], e["stop"]) for e in got]
    if windows[1] == (4, 8):
        pytest.fail("the window runs past the end of the row: cut stop at the row length")
    if windows[0] == (-1, 4):
        pytest.fail("the window starts before the row: cut start at 0")
    if windows[2] == (1, 5) or windows[2] == (2, 5):
        pytest.fail("the window stops one token short: stop is exclusive, pos + context + 1")
    assert windows == [(0, 4), (4, 7), (1, 6)], f"windows {windows}, expected [(0, 4), (4, 7), (1, 6)]"


@pytest.mark.exercise("max_activating_examples", points=1)
def test_max_activating_examples_positive_only_ties_and_validation(impl):
    acts = torch.tensor([[0.0, 2.0, -1.0], [2.0, 0.0, 0.5]])
    got = impl.max_activating_examples(acts, k=5, context=0)
    assert [(e["row"], e["pos"]) for e in got] == [(0, 1), (1, 0), (1, 2)], \
        "only positive activations count (3 here, so 3 examples), and at a tie the earlier token comes first"
    assert all((e["start"], e["stop"]) == (e["pos"], e["pos"] + 1) for e in got), "context=0: the token alone"
    expect_value_error(impl.max_activating_examples, torch.ones(5), what="max_activating_examples of a 1-D tensor",
                       expected="[rows, pos]")
    expect_value_error(impl.max_activating_examples, acts, k=0, what="k=0", expected="a positive int")
    expect_value_error(impl.max_activating_examples, acts, context=-1, what="context=-1", expected=">= 0")


# ---------------------------------------------------------------- interval_examples

@pytest.mark.exercise("interval_examples", points=2)
def test_interval_examples_fall_in_their_intervals(impl):
    # values 0.25, 0.5, ..., 4.0 (16 tokens) plus zeros; intervals of width 1: (0,1], (1,2], (2,3], (3,4]
    acts = torch.zeros(4, 8)
    acts.view(-1)[torch.arange(0, 32, 2)] = torch.arange(1, 17) / 4
    got = call_unmutated(impl.interval_examples, acts, n_intervals=4, per_interval=3, seed=0)
    assert isinstance(got, list) and len(got) == 4, "one list per interval"
    for i, examples in enumerate(got):
        assert len(examples) == 3, f"interval {i} has 4 tokens: draw per_interval=3 of them, got {len(examples)}"
        values = [e["value"] for e in examples]
        if i == 0 and any(v > 1 for v in values) and all(v >= 1 for v in values):
            pytest.fail("intervals start at the smallest activation: they split (0, max] into equal parts")
        assert all(i < v <= i + 1 for v in values), \
            f"interval {i} is ({i}, {i + 1}], its examples have values {values}: (max*i/n, max*(i+1)/n]"
        for e in examples:
            assert acts[e["row"], e["pos"]].item() == e["value"], f"{e}: value is not acts[row, pos]"
        assert len({(e["row"], e["pos"]) for e in examples}) == 3, \
            f"interval {i} repeats a token: draw without replacement (torch.randperm)"
    assert any(e["value"] == 4.0 for e in got[3]) or len(got[3]) == 3, "the maximum belongs to the last interval"
    few = impl.interval_examples(acts, n_intervals=4, per_interval=10, seed=0)
    assert [len(x) for x in few] == [4, 4, 4, 4], "fewer tokens than per_interval: all of them"
    assert sorted(e["value"] for e in few[3]) == [3.25, 3.5, 3.75, 4.0], "the last interval includes the maximum"


@pytest.mark.exercise("interval_examples", points=1)
def test_interval_examples_are_seeded_and_validated(impl):
    acts = torch.rand(20, 30, generator=gen(2))
    a = impl.interval_examples(acts, n_intervals=5, per_interval=4, seed=1)
    assert a == impl.interval_examples(acts, n_intervals=5, per_interval=4, seed=1), \
        "the same seed should give the same examples: a torch.Generator seeded with seed"
    assert a != impl.interval_examples(acts, n_intervals=5, per_interval=4, seed=2), "another seed, the same examples"
    assert impl.interval_examples(torch.zeros(3, 4), n_intervals=3) == [[], [], []], "a silent feature: empty lists"
    expect_value_error(impl.interval_examples, torch.ones(4), what="interval_examples of a 1-D tensor",
                       expected="[rows, pos]")
    for name in ("n_intervals", "per_interval"):
        expect_value_error(impl.interval_examples, acts, **{name: 0}, what=f"{name}=0", expected="a positive int")


# ---------------------------------------------------------------- steering_hook

def _steering_hook_output(impl, direction, alpha, act, **kwargs):
    """Driver: whether steering_hook(direction, alpha, **kwargs) is callable, and its output on (act, None)
    (an in-place change of ``act`` comes back to the caller's tensor)."""
    hook = impl.steering_hook(direction, alpha, **kwargs)
    if not callable(hook):
        return {"callable": False}
    return {"callable": True, "out": hook(act, None)}


def _hook_output(impl, direction, alpha, act):
    """Driver: the output of steering_hook(direction, alpha) on (act, None), or its error."""
    return impl.steering_hook(direction, alpha)(act, None)


def _steered_logits(impl, model, tokens, direction, alpha):
    """Driver: the model's logits with steering_hook(direction, alpha) on blocks.1.hook_resid_pre."""
    with model.hooks(fwd_hooks=[("blocks.1.hook_resid_pre", impl.steering_hook(direction, alpha))]):
        return model(tokens)


@pytest.mark.exercise("steering_hook", points=2)
def test_steering_hook_adds_alpha_times_the_direction_from_start(impl):
    act = torch.randn(2, 6, 4, generator=gen(3))
    direction = torch.tensor([2.0, 0.0, 0.0, 0.0])  # norm 2: a hook that normalizes adds half as much
    before = act.clone()
    got = drive(impl, _steering_hook_output, direction, 1.5, act, start=2)
    assert got["callable"], "steering_hook returns a function hook(act, hook)"
    out = got["out"]
    assert torch.equal(act, before), "the hook changed its input in place: add to a copy (act.clone())"
    out = assert_shape(out, (2, 6, 4), "the hook's output")
    if torch.allclose(out[:, :2], act[:, :2] + 1.5 * direction):
        pytest.fail("positions before start were steered: add only to act[:, start:]")
    if torch.allclose(out[:, 2:], act[:, 2:] + 1.5 * direction / 2):
        pytest.fail("the direction was normalized: use it as given, alpha sets the scale")
    assert_close(out[:, :2], act[:, :2], "positions before start", hint="leave them as they are")
    assert_close(out[:, 2:], act[:, 2:] + 1.5 * direction, "positions from start on",
                 hint="act[:, start:] + alpha * direction")


@pytest.mark.exercise("steering_hook", points=1)
def test_steering_hook_in_the_model_and_validation(impl):
    model = lm()
    tokens = model.to_tokens("The bridge")
    plain = model(tokens)
    assert_close(drive(impl, _steered_logits, model, tokens, torch.ones(model.cfg.d_model), 0.0), plain,
                 "logits with alpha=0", atol=1e-5, hint="alpha 0 changes nothing")
    push = torch.randn(model.cfg.d_model, generator=gen(4))
    assert not torch.allclose(drive(impl, _steered_logits, model, tokens, push, 10.0), plain, atol=1e-2), \
        "alpha 10 should change the logits"
    expect_value_error(impl.steering_hook, torch.ones(2, 4), 1.0, what="steering_hook with a 2-D direction",
                       expected="a vector [d_model]")
    expect_value_error(impl.steering_hook, torch.ones(4), 1.0, start=-1, what="start=-1", expected=">= 0")
    impl.steering_hook(torch.ones(3), 1.0)  # making the hook must work; calling it on the wrong width must not
    expect_value_error(drive, impl, _hook_output, torch.ones(3), 1.0, torch.zeros(1, 2, 4),
                       what="a 3-dimensional direction on a [1, 2, 4] activation",
                       expected="the direction's length is d_model")


# ---------------------------------------------------------------- generate_with_steering

def oracle(model, prompt, hook_name, hook, n, max_new_tokens, seed):
    from mi_course.saes.steering import generate_with_steering

    with learner_seeding():  # the course's function seeds as the learner's code did with the seed it was handed
        return generate_with_steering(model, prompt, hook_name, hook, n=n, max_new_tokens=max_new_tokens, seed=seed)


def unembed_push(model, word, alpha):
    from mi_course.saes.steering import steering_hook

    return steering_hook(model.W_U[:, model.to_single_token(word)].detach(), alpha)


def _generate_pushed(impl, model, prompt, hook_name, direction, alpha, **kwargs):
    """Driver: generate_with_steering with the course's steering_hook(direction, alpha) on ``hook_name`` (a hook
    is code: it is made here, next to the learner's function)."""
    from mi_course.saes.steering import steering_hook

    return impl.generate_with_steering(model, prompt, hook_name, steering_hook(direction, alpha), **kwargs)


@pytest.mark.exercise("generate_with_steering", points=2)
def test_generate_with_steering_is_seeded_and_matches_the_recipe(impl):
    model, seed = lm(), run_seed(5)
    got = impl.generate_with_steering(model, "One day", None, None, n=4, max_new_tokens=10, seed=seed)
    assert isinstance(got, list) and len(got) == 4 and all(isinstance(t, str) for t in got), \
        "return a list of n strings"
    if all(t.startswith("One day") for t in got):
        pytest.fail("the texts include the prompt: return only the new tokens")
    if len(set(got)) == 1:
        pytest.fail("all continuations are the same: sample from the softmax (torch.multinomial), not argmax")
    assert got == impl.generate_with_steering(model, "One day", None, None, n=4, max_new_tokens=10, seed=seed), \
        "the same seed should give the same texts"
    assert got != impl.generate_with_steering(model, "One day", None, None, n=4, max_new_tokens=10, seed=seed + 1)
    expected = oracle(model, "One day", None, None, 4, 10, seed)
    assert got == expected, ("the texts differ from the recipe's: one torch.Generator seeded before the loop, "
                             "torch.multinomial(softmax of the last position's logits, 1, generator=g) per step, "
                             f"all rows at once\n got {got[:2]}\nwant {expected[:2]}")


@pytest.mark.exercise("generate_with_steering", points=2)
def test_generate_with_steering_hooks_every_step_and_cuts_at_eos(impl):
    model = lm()
    hook_name = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    push = unembed_push(model, "bridge", 50.0)
    got = drive(impl, _generate_pushed, model, "The", hook_name, model.W_U[:, model.to_single_token("bridge")].detach(),
                50.0, n=3, max_new_tokens=8, seed=0)
    counts = [t.split().count("bridge") for t in got]
    if all(c == 1 for c in counts):
        pytest.fail("only the first new token was steered: run every step inside model.hooks(...)")
    assert all(c >= 6 for c in counts), f"with the hook in every step nearly every token is 'bridge': {got}"
    assert got == oracle(model, "The", hook_name, push, 3, 8, 0)
    eos = model.tokenizer.eos_token_id
    ended = drive(impl, _generate_pushed, model, "The", hook_name, model.W_U[:, eos].detach(), 50.0, n=2,
                  max_new_tokens=5, seed=0)
    assert ended == ["", ""], f"rows that write the end-of-text token stop there (cut before it), got {ended}"
    for name in ("n", "max_new_tokens"):
        expect_value_error(impl.generate_with_steering, model, "The", None, None, **{name: 0}, what=f"{name}=0",
                           expected="a positive int")


# ---------------------------------------------------------------- bridge_steering_feature (investigation)

# Neutral prompts that neither the notebook nor the reference answer uses, and a seed of their own.
FRESH_PROMPTS = ["Then", "Every morning", "She said that", "Last year", "In the evening", "It was", "Yesterday",
                 "We think that", "Later", "At noon"]
BRIDGE_WORDS = ("bridge", "Golden", "Gate")
# What the card's bridge feature (a detector of bridge documents) writes instead of the name, pushed hard.
SURROUNDINGS = ("San Francisco", "cables", "cable", "towers", "suspension", "Painters", "ships")


@pytest.mark.exercise("bridge_steering_feature", points=3)
def test_bridge_steering_feature_makes_the_model_name_the_bridge(impl):
    """Graded by what the feature does to the model: steered at alpha 48 with the canonical hook on fresh prompts
    and seeds, at least 60% of the continuations name the bridge. Measured here when this test was written: the
    features whose decoder rows raise the words' logits most name it in 80-90% (365: 90%, 744: 89%, 400: 80%);
    the card's bridge detector 919 in 1% (while 86% of its continuations mention San Francisco, cables, ...);
    the other bridge-text features and the next logit-panel features in 40% or less (305: 40%, 605: 31%)."""
    from mi_course.saes.steering import mention_share, steering_sweep

    model, sae = lm(), mi_course.load_model("sae", mode="lite", device="cpu")
    feature = impl.bridge_steering_feature(sae, model)
    assert isinstance(feature, int) and not isinstance(feature, bool), \
        f"return a feature id as a Python int, got {type(feature).__name__} (int(...) of a tensor)"
    assert 0 <= feature < sae.W_dec.shape[0], f"feature {feature} is not a feature of this SAE"
    texts = steering_sweep(model, sae, feature, FRESH_PROMPTS, [48], BRIDGE_WORDS, n=8, max_new_tokens=16,
                           seed=1234, start=1, progress=False)[48]["texts"]
    named, around = mention_share(texts, BRIDGE_WORDS), mention_share(texts, SURROUNDINGS)
    if named < 0.6 and around >= 0.5:
        pytest.fail(
            f"steered with feature {feature} at alpha 48, {named:.0%} of the continuations name the bridge, but "
            f"{around:.0%} write about its surroundings (San Francisco, cables, towers, ...), e.g. {texts[0]!r}. "
            "That is what a feature that DETECTS bridge text does when pushed (the card's bridge feature does it): "
            "it moves the model to the topic, not to the name. Look for a feature that WRITES the words: its "
            "decoder row raises the logits of 'bridge', 'Golden', 'Gate' (the dashboard's logit panel)")
    assert named >= 0.6, (
        f"steered with feature {feature} at alpha 48, {named:.0%} of the continuations name the bridge (at least 60% "
        f"needed), e.g. {texts[:2]}. Look for a feature whose decoder row raises the bridge words' logits (the "
        "dashboard's logit panel), steer it at alpha 48 and count the continuations that name the bridge")
