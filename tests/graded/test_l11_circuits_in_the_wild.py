"""Graded tests for lesson 11 (circuits in the wild).

Expected values come from another route than the reference solution: bases written out with math.cos,
embeddings built with known shares per frequency, logits set by hand, exact properties of patching (a
position before the corruption restores nothing; the corrupted token restored before block 0 restores all),
and the course's canonical :mod:`mi_course.language.patching` as an oracle on the shipped lite models (the
behaviour is compared, not the code).
"""

import math
from functools import cache, partial
from types import SimpleNamespace

import pytest
import torch

import mi_course
from mi_course.grading.asserts import assert_close, assert_shape, call_unmutated, expect_value_error
from mi_course.grading.judge import drive
from mi_course.grading.secret_seed import learner_seeding, run_seed

LESSON = "l11_circuits_in_the_wild"


@cache
def lm():
    torch.set_num_threads(1)
    return mi_course.load_model("lm", mode="lite", device="cpu")


@cache
def ioi_set(n: int, seed: int, template: int):
    from mi_course.language.ioi import ioi_patching_set

    return ioi_patching_set(lm(), n, seed=seed, template=template)


def hooked_points(model) -> list[str]:
    """The hook points that still have hooks attached (an empty list: no hooks left)."""
    return [name for name, hp in model.hook_dict.items() if hp.fwd_hooks or hp.bwd_hooks]


# Drivers: they run next to the learner's code (in class grading, in the sandboxed subject) and return data
# only; every check on that data stays in the tests below.


def _key_frequencies_alone(lesson, *args, **kwargs):
    """key_frequencies(*args, **kwargs) with the course's basis standing in for the learner's fourier_basis."""
    from mi_course.language.modular import fourier_basis

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lesson, "fourier_basis", fourier_basis, raising=False)
        return lesson.key_frequencies(*args, **kwargs)


def _activation_patching(lesson, model, clean, corrupted, answers, **kwargs):
    """activation_patching(model, clean, corrupted, metric, **kwargs) with the course's metric
    mean_logit_diff(*answers) (io and s tokens): the grid and the hook points left hooked."""
    from mi_course.language.patching import mean_logit_diff

    grid = lesson.activation_patching(model, clean, corrupted, mean_logit_diff(*answers), **kwargs)
    return {"grid": grid, "hooked": hooked_points(model)}


def _ioi_answer_heads(lesson, model, data):
    """ioi_answer_heads(model, IOIPatchingSet(**data)): the patching set is sent as its fields."""
    from mi_course.language.ioi import IOIPatchingSet

    return lesson.ioi_answer_heads(model, IOIPatchingSet(**data))


def _causal_trace(lesson, model, *args, **kwargs):
    """causal_trace(model, *args, **kwargs): its result and the hook points left hooked."""
    out = lesson.causal_trace(model, *args, **kwargs)
    return {"out": out, "hooked": hooked_points(model)}


# ---------------------------------------------------------------- fourier_basis

def basis_by_hand(p: int) -> torch.Tensor:
    rows = [[1.0] * p]
    for k in range(1, p // 2 + 1):
        rows.append([math.cos(2 * math.pi * k * x / p) for x in range(p)])
        if 2 * k != p:
            rows.append([math.sin(2 * math.pi * k * x / p) for x in range(p)])
    basis = torch.tensor(rows, dtype=torch.float64)
    return (basis / basis.norm(dim=-1, keepdim=True)).float()


@pytest.mark.exercise("fourier_basis", points=2)
@pytest.mark.parametrize("p", [7, 8])
def test_fourier_basis_rows_and_named_mistakes(impl, p):
    basis = impl.fourier_basis(p)
    assert_shape(basis, (p, p), f"fourier_basis({p})")
    assert basis.dtype == torch.float32, f"the basis should be float32, got {basis.dtype}"
    expected = basis_by_hand(p)
    if torch.allclose(basis, expected.T, atol=1e-4) and not torch.allclose(basis, expected, atol=1e-4):
        pytest.fail("the basis is transposed: each ROW is one function (row 1 is cos(2 pi x / p)), each "
                    "column one input x")
    norms = basis.norm(dim=-1)
    if not torch.allclose(norms, torch.ones(p), atol=1e-4):
        pytest.fail(f"the rows have norms {norms.tolist()[:3]} ...: normalize every row to norm 1 (the "
                    "constant row is 1/sqrt(p) everywhere)")
    if torch.allclose(basis[1], expected[2], atol=1e-4):
        pytest.fail("row 1 is the sine: the order is constant, cos 1, sin 1, cos 2, sin 2, ...")
    if p % 2 == 0 and (basis[-1].abs().max() < 1e-4 or torch.allclose(basis[-1], expected[-2], atol=1e-4)):
        pytest.fail("for an even p the last row is cos(pi x), alone: sin(pi x) is zero at every integer x")
    assert_close(basis, expected, f"fourier_basis({p})", atol=1e-4,
                 hint="row 2k-1 is cos(2 pi k x / p) and row 2k is sin(2 pi k x / p), each divided by its norm")
    assert_close(basis @ basis.T, torch.eye(p), "basis @ basis.T", atol=1e-4, hint="the rows are orthonormal")


@pytest.mark.exercise("fourier_basis", points=1)
def test_fourier_basis_rejects_a_bad_p(impl):
    for bad in (1, 0, 6.0, True):
        expect_value_error(impl.fourier_basis, bad, what=f"fourier_basis({bad!r})", expected="an int >= 2")


# ---------------------------------------------------------------- key_frequencies

def embedding_with_shares(p: int, coefficients: dict, d_model: int = 5) -> torch.Tensor:
    """W_E [p + 1, d_model] whose column j is coefficients[(row, j)] times that (unit-norm) basis row; the
    extra last row is the '=' token, large, so that using it shows."""
    basis = basis_by_hand(p)
    W = torch.zeros(p + 1, d_model)
    for (row, col), c in coefficients.items():
        W[:p, col] += c * basis[row]
    W[p] = 50.0
    return W


@pytest.fixture
def graded_alone(impl):
    """key_frequencies graded on its own: the course's basis stands in for the learner's fourier_basis."""
    return SimpleNamespace(key_frequencies=partial(drive, impl, _key_frequencies_alone))


@pytest.mark.exercise("key_frequencies", points=2)
def test_key_frequencies_hand_made_embedding_and_named_mistakes(graded_alone):
    impl, p = graded_alone, 11
    # rows: cos k is row 2k-1, sin k row 2k. Shares: freq 3 = 4 + 4 = 8 (split over cos and sin),
    # freq 2 = 6.25 (cos only), freq 1 = 1: total 15.25 -> 0.525, 0.41, 0.066
    W_E = embedding_with_shares(p, {(5, 0): 2.0, (6, 1): 2.0, (3, 2): 2.5, (1, 3): 1.0})
    try:
        got = call_unmutated(impl.key_frequencies, W_E, p, mass=0.5)
    except NotImplementedError:  # a RuntimeError too: the stub, reported as not started
        raise
    except RuntimeError as err:
        pytest.fail(f"key_frequencies raised {err}: use the number tokens' rows W_E[:p] only (row p is '=')")
    assert isinstance(got, list) and all(isinstance(k, int) and not isinstance(k, bool) for k in got), \
        f"return a list of Python ints, got {got!r}"
    if got == [2]:
        pytest.fail("with mass 0.5 you return [2]: add cos k and sin k together, they are one frequency k "
                    "(frequency 3 holds 8 of 15.25, split between its cos and sin rows)")
    if got in ([5], [6], [5, 6], [6, 5]):
        pytest.fail(f"you return basis rows {got}, not frequencies: row 2k-1 and row 2k are frequency k")
    assert got == [3], f"mass 0.5: expected [3] (frequency 3 holds 52.5%), got {got}"
    got = impl.key_frequencies(W_E, p, mass=0.9)
    if got == [3]:
        pytest.fail("mass 0.9 returns [3] (52.5%): take the fewest frequencies that hold AT LEAST the mass")
    assert got == [3, 2], f"mass 0.9: expected [3, 2] (93.4% together), got {got}"
    got = impl.key_frequencies(W_E, p, mass=0.95)
    assert got == [3, 2, 1], f"mass 0.95: expected [3, 2, 1], got {got}: the frequencies go largest first"


@pytest.mark.exercise("key_frequencies", points=1)
def test_key_frequencies_squares_the_norm_and_breaks_ties_low_first(graded_alone):
    impl, p = graded_alone, 11
    # squared shares 9 : 4 : 1 (of 14): mass 0.9 needs two; by unsquared norms 3 : 2 : 1 it would need three
    W_E = embedding_with_shares(p, {(3, 0): 3.0, (8, 1): 2.0, (1, 2): 1.0})
    got = impl.key_frequencies(W_E, p, mass=0.9)
    if got == [2, 4, 1]:
        pytest.fail("you rank by the norm; the shares are of the SQUARED norm (9 : 4 : 1 here)")
    assert got == [2, 4], f"expected [2, 4], got {got}"
    # Ties and mass 1 on p = 4, where the constant row and cos 2 (row 3) are +-1/2 everywhere: their shares come
    # out exactly equal, and the shares sum to exactly 1, in float32 as in float64 (with p = 11 float32 rounding
    # splits a tie by 1e-7 and leaves the running sum a hair below 1, so a sound float32 answer would fail).
    tied = embedding_with_shares(4, {(0, 0): 1.0, (3, 1): 1.0, (1, 2): 0.5})  # shares 4/9, 4/9, 1/9
    got = impl.key_frequencies(tied, 4, mass=0.8)
    assert got == [0, 2], f"p = 4: frequencies 0 and 2 hold the same share (4/9 each): at a tie the lower " \
                          f"comes first, expected [0, 2], got {got}"
    whole = embedding_with_shares(4, {(3, 0): 1.0, (3, 1): 1.0, (3, 2): 1.0, (0, 3): 1.0})  # shares 3/4, 1/4
    got = impl.key_frequencies(whole, 4, mass=1.0)
    assert got == [2, 0], f"p = 4, mass 1: every frequency with a share (2 holds 3/4, the constant 0 holds 1/4), " \
                          f"and no other, expected [2, 0], got {got}"
    expect_value_error(impl.key_frequencies, W_E, p, mass=0.0, what="mass=0", expected="a mass in (0, 1]")
    expect_value_error(impl.key_frequencies, W_E, p, mass=1.5, what="mass=1.5", expected="a mass in (0, 1]")
    expect_value_error(impl.key_frequencies, W_E[:5], p, what="W_E with 5 rows for p = 11",
                       expected="at least p rows")
    expect_value_error(impl.key_frequencies, W_E[:, 0], p, what="a 1-D W_E", expected="[d_vocab, d_model]")


@pytest.mark.exercise("key_frequencies", points=1)
def test_key_frequencies_of_the_shipped_model(graded_alone):
    from mi_course.language.modular import key_frequencies

    model = mi_course.load_model("modular-addition", mode="lite", device="cpu")
    p = model.cfg.d_vocab_out
    W_E = model.W_E.detach()
    got = graded_alone.key_frequencies(W_E, p)
    assert got == key_frequencies(W_E, p), \
        f"on the shipped model you find {got}; the course finds {key_frequencies(W_E, p)}"


# ---------------------------------------------------------------- logit_diff

@pytest.mark.exercise("logit_diff", points=2)
def test_logit_diff_by_hand_and_named_mistakes(impl):
    logits = torch.zeros(2, 3, 5)
    logits[:, 0] = torch.tensor([9.0, -9.0, 0.0, 0.0, 0.0])   # an earlier position, to be ignored
    logits[0, -1] = torch.tensor([0.5, 3.0, -1.0, 2.0, 0.0])
    logits[1, -1] = torch.tensor([1.0, 0.0, 4.0, -2.0, 0.5])
    correct, wrong = torch.tensor([1, 2]), torch.tensor([3, 0])
    out = call_unmutated(impl.logit_diff, logits, correct, wrong)
    assert isinstance(out, torch.Tensor), f"return a tensor, got {type(out).__name__}"
    if out.dim() == 0:
        pytest.fail("you return one number: return one logit difference per prompt, [batch] (average later)")
    assert_shape(out, (2,), "logit_diff")
    expected = torch.tensor([3.0 - 2.0, 4.0 - 1.0])
    if torch.allclose(out, -expected):
        pytest.fail("the sign is flipped: logit[correct] - logit[wrong]")
    if torch.allclose(out, torch.tensor([-9.0 - 0.0, 0.0 - 9.0])) or torch.allclose(out, torch.tensor([-9.0, -9.0])):
        pytest.fail("you read the first position: the answer is predicted at the LAST position")
    assert_close(out, expected, "logit_diff", hint="logits[:, -1] at correct minus at wrong, row by row")


@pytest.mark.exercise("logit_diff", points=1)
def test_logit_diff_pairs_each_prompt_with_its_own_answers_and_validates(impl):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 2, 6, generator=g)
    correct, wrong = torch.tensor([0, 5, 2, 2]), torch.tensor([1, 1, 3, 0])
    out = impl.logit_diff(logits, correct, wrong)
    loop = torch.tensor([logits[i, -1, correct[i]] - logits[i, -1, wrong[i]] for i in range(4)])
    assert_close(out, loop, "logit_diff on 4 prompts", atol=1e-5,
                 hint="prompt i uses correct[i] and wrong[i]; logits[:, -1][:, correct] would pair every prompt "
                      "with every answer")
    expect_value_error(impl.logit_diff, logits[0], correct[:1], wrong[:1], what="2-D logits",
                       expected="[batch, pos, vocab]")
    expect_value_error(impl.logit_diff, logits, correct[:3], wrong[:3], what="3 answers for 4 prompts",
                       expected="one correct and one wrong token per prompt")


# ---------------------------------------------------------------- activation_patching

def patching_data():
    data = ioi_set(6, 21, 1)
    return data


def metric_of(data):
    """The metric mean_logit_diff(data.io, data.s), as the data a driver builds it from."""
    return data.io, data.s


@pytest.mark.exercise("activation_patching", points=3)
def test_activation_patching_resid_exact_properties_and_named_mistakes(impl):
    from mi_course.language import patching

    model, data = lm(), patching_data()
    metric = metric_of(data)
    # impl.activation_patching(model, data.clean, data.corrupted, mean_logit_diff(data.io, data.s), kind=...)
    out = call_unmutated(partial(drive, impl, _activation_patching), model, data.clean, data.corrupted, metric,
                         kind="resid")
    grid = out["grid"]
    assert not out["hooked"], "a hook is still attached after activation_patching: use run_with_hooks, or " \
                                 "model.hooks(...) as a with-block, so that each hook is removed again"
    n_layers, n_pos = model.cfg.n_layers, data.clean.shape[1]
    assert_shape(grid, (n_layers, n_pos), "activation_patching(kind='resid')")
    s2 = data.positions["S2"]
    if abs(grid[0, s2].item()) < 0.05 and (grid[:, :s2] - 1).abs().max() < 0.05:
        pytest.fail("restoring the corrupted token before block 0 restores nothing: patch the CLEAN "
                    "activation into the CORRUPTED run (you patch the other way)")
    if grid.abs().max() > 3:
        pytest.fail(f"values up to {grid.abs().max():.1f}: normalize, (patched - corrupted) / (clean - corrupted)")
    if torch.allclose(grid[:, 0], grid[:, s2], atol=1e-3):
        pytest.fail("every position scores the same: patch ONE position per cell (act[:, pos]), not all")
    assert abs(grid[0, s2].item() - 1) < 1e-3, \
        f"restoring the one corrupted token before block 0 should restore everything (1.0), got {grid[0, s2]:.3f}"
    assert grid[:, :s2].abs().max() < 1e-3, \
        "positions before the corrupted token hold the same activations in both runs: they must restore 0"
    oracle = patching.activation_patching(model, data.clean, data.corrupted, patching.mean_logit_diff(*metric),
                                          kind="resid", progress=False)
    if n_layers > 1 and torch.allclose(grid[:-1], oracle[1:], atol=1e-3):
        pytest.fail("your row L matches the course's row L + 1: patch blocks.{L}.hook_resid_pre, the stream "
                    "ENTERING block L (hook_resid_post is one block later)")
    assert_close(grid, oracle, "activation_patching(kind='resid')", atol=2e-3,
                 hint="each cell: run the corrupted tokens with blocks.{layer}.hook_resid_pre[:, pos] replaced "
                      "by the clean run's")


@pytest.mark.exercise("activation_patching", points=2)
def test_activation_patching_heads_against_the_course(impl):
    from mi_course.language import patching

    model, data = lm(), patching_data()
    metric = metric_of(data)
    out = drive(impl, _activation_patching, model, data.clean, data.corrupted, metric, kind="head")
    grid = out["grid"]
    assert not out["hooked"], "a hook is still attached after activation_patching(kind='head')"
    assert_shape(grid, (model.cfg.n_layers, model.cfg.n_heads), "activation_patching(kind='head')")
    oracle = patching.activation_patching(model, data.clean, data.corrupted, patching.mean_logit_diff(*metric),
                                          kind="head", progress=False)
    assert_close(grid, oracle, "activation_patching(kind='head')", atol=2e-3,
                 hint="hook_z is [batch, pos, head, d_head]: patch z[:, :, head] (every position) for one head")


@pytest.mark.exercise("activation_patching", points=1)
def test_activation_patching_validates(impl):
    model, data = lm(), patching_data()
    metric = metric_of(data)
    activation_patching = partial(drive, impl, _activation_patching)
    expect_value_error(activation_patching, model, data.clean, data.corrupted[:, :-1], metric,
                       what="clean and corrupted of different lengths", expected="the same shape")
    expect_value_error(activation_patching, model, data.clean, data.corrupted, metric, kind="neuron",
                       what="kind='neuron'", expected="'resid' or 'head'")
    expect_value_error(activation_patching, model, data.clean, data.clean, metric,
                       what="clean patched into itself", expected="runs with different metrics")


# ---------------------------------------------------------------- causal_trace

def fact():
    from mi_course.language.ioi import answer_token
    from mi_course.language.patching import subject_positions
    from mi_course.organisms.corpus import fact_prompts

    model = lm()
    f = fact_prompts(phrasing=1)[3]  # "The ... is located in the city of"
    return model.to_tokens(f.prompt)[0], subject_positions(model, f.prompt, f.subject), answer_token(model, f.answer)


@pytest.mark.exercise("causal_trace", points=3)
def test_causal_trace_against_the_course_and_named_mistakes(impl):
    from mi_course.language import patching

    model = lm()
    tokens, subject, answer = fact()
    std, seed = patching.default_noise_std(model), run_seed(5)
    out = call_unmutated(partial(drive, impl, _causal_trace), model, tokens, subject, answer, std, n_samples=4,
                         seed=seed)  # impl.causal_trace(...), and the hook points left hooked
    hooked, out = out["hooked"], out["out"]
    assert not hooked, "a hook is still attached after causal_trace"
    assert isinstance(out, tuple) and len(out) == 3, "return (probs, clean, corrupted)"
    probs, clean, corrupted = out
    assert_shape(probs, (model.cfg.n_layers, len(tokens)), "probs")
    with learner_seeding():  # the noise the learner's code drew from the seed it was handed
        ref = patching.causal_trace(model, tokens, subject, answer, std, n_samples=4, seed=seed)
    assert abs(float(clean) - ref.clean) < 1e-4, f"clean probability {float(clean):.4f}, expected {ref.clean:.4f}"
    if abs(float(corrupted) - ref.corrupted) > 1e-4:
        pytest.fail(f"corrupted probability {float(corrupted):.4f}, expected {ref.corrupted:.4f}: noise only the "
                    "subject positions, at hook_embed, noise = torch.randn(n_samples, len(subject), d_model, "
                    "generator=torch.Generator().manual_seed(seed)) * noise_std, and average the probabilities")
    others = [pos for pos in range(len(tokens)) if pos not in subject]
    first = probs[0, others]
    if not torch.allclose(first, torch.full_like(first, float(corrupted)), atol=1e-4) and \
            torch.allclose(first, first[:1].expand_as(first), atol=1e-5):
        pytest.fail(f"restoring a position the noise never touched gives {first[0]:.4f}, not your corrupted "
                    f"{float(corrupted):.4f}: compute the cells as the baseline is computed (the probability of "
                    "each noisy copy, then the mean over copies: not the mean of the logits)")
    if not torch.allclose(first, torch.full_like(first, float(corrupted)), atol=1e-4):
        pytest.fail("restoring a position the noise never touched, before block 0, changes the probability: use "
                    "the SAME noise draws for every cell (draw it once, before the loops)")
    before = [pos for pos in range(min(subject))]
    assert torch.allclose(probs[:, before], torch.full_like(probs[:, before], float(corrupted)), atol=1e-4), \
        "positions before the subject hold the same state with and without noise: restoring them changes nothing"
    assert_close(probs, ref.probs, "causal_trace probs", atol=1e-4,
                 hint="each cell: noise at hook_embed, blocks.{layer}.hook_resid_pre[:, pos] put back from the "
                      "clean run, then the answer's probability at the last position averaged over the copies")


@pytest.mark.exercise("causal_trace", points=1)
def test_causal_trace_validates(impl):
    model = lm()
    tokens, subject, answer = fact()
    expect_value_error(impl.causal_trace, model, tokens[None].repeat(2, 1), [1], answer, 0.4,
                       what="a batch of two prompts", expected="one prompt, 1-D")
    expect_value_error(impl.causal_trace, model, tokens, [], answer, 0.4, what="an empty subject")
    expect_value_error(impl.causal_trace, model, tokens, [len(tokens)], answer, 0.4,
                       what="a subject position past the end")


# ---------------------------------------------------------------- ioi_answer_heads (investigation)

@pytest.mark.exercise("ioi_answer_heads", points=3)
def test_ioi_answer_heads_restore_the_answer_at_the_last_position(impl):
    """Graded by what the heads do in the model: patched together at the last position with the canonical code,
    on a template and prompts the learner did not see, they restore at least 80% of the logit difference."""
    from mi_course.language.patching import mean_logit_diff, patch_heads

    model = lm()
    heads = drive(impl, _ioi_answer_heads, model, ioi_set(24, 3, 0)._asdict())  # impl.ioi_answer_heads(model, set)
    assert isinstance(heads, (list, tuple)) and heads, f"return a list of (layer, head) pairs, got {heads!r}"
    heads = [tuple(h) for h in heads]
    assert len(heads) <= 3, f"{len(heads)} heads: name at most three"
    for layer, head in heads:
        assert all(isinstance(v, int) and not isinstance(v, bool) for v in (layer, head)), \
            f"({layer!r}, {head!r}): layers and heads are Python ints"
        assert 0 <= layer < model.cfg.n_layers and 0 <= head < model.cfg.n_heads, f"no head {layer}.{head}"
    fresh = ioi_set(24, 99, 2)
    restored = patch_heads(model, fresh.clean, fresh.corrupted, mean_logit_diff(fresh.io, fresh.s), heads)
    assert restored >= 0.8, (
        f"patched at the last position, heads {heads} restore {restored:.0%} of the logit difference on new "
        "prompts: at least 80% is needed. Patch each head at the last position only: a head that matters at "
        "every position may do its work elsewhere")
