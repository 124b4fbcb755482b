"""Lesson 11's claims about the shipped lite models, as tests with thresholds, measured on prompts other than the
ones the notebook finds them with (it uses seed 11 and the first held-out template, the short fact phrasing).

IOI in the `lm`: the repeated name's information leaves its position in block 0 (head 0.2 moves it one token
on), waits at the token after it through blocks 1 and 2, and reaches the last position in block 2 (heads
2.0 and 2.1). Greater-than in its organism: head 0.3 brings the start year to the last position, where the
MLPs compute the comparison. Facts in the `lm`: the subject reaches the last position in block 0's attention
and MLP 0 there recalls the fact. Modular addition: key frequencies carry the answer.
"""

import math

import pytest
import torch

import mi_course
from mi_course.language import modular, patching
from mi_course.language.greater_than import greater_than_patching_set, mean_probability_difference
from mi_course.language.ioi import answer_token, ioi_patching_set
from mi_course.organisms import corpus

SEED = 7  # the notebook uses 11


@pytest.fixture(scope="module")
def lm():
    torch.set_num_threads(1)
    return mi_course.load_model("lm", mode="lite", device="cpu")


# ---------------------------------------------------------------- IOI

@pytest.fixture(scope="module", params=[1, 2], ids=["template1", "template2"])
def ioi(lm, request):
    data = ioi_patching_set(lm, 30, seed=SEED, template=request.param)
    metric = patching.mean_logit_diff(data.io, data.s)
    resid = patching.activation_patching(lm, data.clean, data.corrupted, metric, kind="resid", progress=False)
    heads = patching.activation_patching(lm, data.clean, data.corrupted, metric, kind="head", progress=False)
    return data, metric, resid, heads


def test_ioi_clean_prompts_prefer_the_indirect_object_and_the_corruption_removes_it(lm, ioi):
    data, metric, _, _ = ioi
    with torch.no_grad():
        clean, corrupted = metric(lm(data.clean)), metric(lm(data.corrupted))
    assert clean > 2.0, f"mean logit difference {clean:.2f} on clean prompts"
    assert abs(corrupted) < 0.5 * clean, f"the ABC corruption leaves {corrupted:.2f} of {clean:.2f}"


def test_ioi_the_repeated_name_travels_through_the_next_token(ioi):
    data, _, resid, _ = ioi
    s2, nxt, end = data.positions["S2"], data.positions["S2+1"], data.positions["END"]
    last = resid.shape[0] - 1
    assert resid[0, s2] > 0.9, f"before block 0 the repeated name restores {resid[0, s2]:.2f}"
    for layer in range(1, last):
        assert resid[layer, nxt] > 0.9, f"block {layer}: the token after S2 restores {resid[layer, nxt]:.2f}"
        assert resid[layer, s2] < 0.1, f"block {layer}: S2 still restores {resid[layer, s2]:.2f}"
        assert resid[layer, end] < 0.3, f"block {layer}: the last position already restores {resid[layer, end]:.2f}"
    assert resid[last, end] > 0.9, f"before the last block the last position restores {resid[last, end]:.2f}"
    assert abs(resid[last, nxt]) < 0.1, \
        f"before the last block the token after S2 still restores {resid[last, nxt]:.2f}"


def test_ioi_heads_mover_in_block_0_and_answer_heads_in_block_2(lm, ioi):
    data, metric, _, heads = ioi
    assert heads[0, 2] > 0.8, f"head 0.2 (patched at every position) restores {heads[0, 2]:.2f}"
    at_end = patching.patch_heads(lm, data.clean, data.corrupted, metric, [(0, 2)], position=-1)
    assert abs(at_end) < 0.1, f"head 0.2 patched at the last position only restores {at_end:.2f}: it should " \
                              "do its work elsewhere"
    answer = patching.patch_heads(lm, data.clean, data.corrupted, metric, [(2, 0), (2, 1)], position=-1)
    assert answer > 0.8, f"heads 2.0 and 2.1 at the last position restore {answer:.2f}"
    others = [heads[layer, head].abs().item() for layer in (1, 3) for head in range(heads.shape[1])]
    assert max(others) < 0.3, f"a head of block 1 or 3 changes the logit difference by {max(others):.2f}"


def test_ioi_attention_head_0_2_looks_back_one_token_and_block_2_reads_the_token_after_s2(lm, ioi):
    data = ioi[0]
    _, cache = lm.run_with_cache(data.clean, names_filter=lambda n: n.endswith("attn.hook_pattern"))
    nxt, end = data.positions["S2+1"], data.positions["END"]
    back = cache["blocks.0.attn.hook_pattern"][:, 2, nxt, nxt - 1].mean()
    assert back > 0.5, f"head 0.2 attends from S2+1 to S2 with {back:.2f}"
    for head in (0, 1):
        read = cache["blocks.2.attn.hook_pattern"][:, head, end, nxt].mean()
        assert read > 0.5, f"head 2.{head} attends from END to S2+1 with {read:.2f}"


# ---------------------------------------------------------------- greater-than

@pytest.fixture(scope="module")
def organism():
    return mi_course.load_model("greater-than", mode="lite", device="cpu")


@pytest.fixture(scope="module", params=[0, 1], ids=["template0", "template1"])
def years(organism, request):
    data = greater_than_patching_set(organism, 30, seed=SEED, template=request.param)
    metric = mean_probability_difference(organism, data.years)
    grids = {kind: patching.activation_patching(organism, data.clean, data.corrupted, metric, kind=kind,
                                                progress=False) for kind in ("resid", "head", "attn", "mlp")}
    return data, metric, grids


def test_greater_than_the_start_year_reaches_the_last_position_in_block_0(organism, years):
    data, _, grids = years
    yy, end = data.positions["YY"], data.positions["END"]
    resid, heads = grids["resid"], grids["head"]
    assert resid[0, yy] > 0.9 and abs(resid[1, yy]) < 0.1, \
        f"the start year's digits restore {resid[0, yy]:.2f} before block 0 and {resid[1, yy]:.2f} after it"
    assert resid[1, end] > 0.9, f"the last position before block 1 restores {resid[1, end]:.2f}"
    assert heads[0, 3] > 0.6, f"head 0.3 restores {heads[0, 3]:.2f}"
    _, cache = organism.run_with_cache(data.clean, names_filter="blocks.0.attn.hook_pattern")
    to_year = cache["blocks.0.attn.hook_pattern"][:, :, end, yy].mean(0)
    assert to_year.argmax() == 3, f"from END to YY block 0's heads attend {to_year.tolist()}: 0.3 should most"
    others = [heads[l, h].abs().item() for l in range(heads.shape[0]) for h in range(heads.shape[1])
              if (l, h) != (0, 3)]
    assert max(others) < 0.2, f"another head restores {max(others):.2f}"


def test_greater_than_the_mlps_at_the_last_position_compute_the_comparison(years):
    data, _, grids = years
    end = data.positions["END"]
    assert grids["mlp"][0, end] > 0.8, f"MLP 0 at the last position restores {grids['mlp'][0, end]:.2f}"
    assert grids["mlp"][1, end] > 0.6, f"MLP 1 at the last position restores {grids['mlp'][1, end]:.2f}"
    assert abs(grids["attn"][1, end]) < 0.2, f"block 1's attention at the last position restores " \
                                             f"{grids['attn'][1, end]:.2f}"


# ---------------------------------------------------------------- facts (causal tracing)

@pytest.fixture(scope="module")
def traces(lm):
    """Normalized traces over the facts in the second phrasing ("... is located in the city of")."""
    out = {"resid": [], "mlp": []}
    for fact in corpus.fact_prompts(phrasing=1):
        tokens = lm.to_tokens(fact.prompt)[0]
        subject = patching.subject_positions(lm, fact.prompt, fact.subject)
        answer = answer_token(lm, fact.answer)
        for kind in out:
            t = patching.causal_trace(lm, tokens, subject, answer, n_samples=6, seed=SEED, kind=kind)
            if t.clean - t.corrupted < 0.2:  # the noise barely hurts: nothing to localize
                continue
            out[kind].append((subject, (t.probs - t.corrupted) / (t.clean - t.corrupted)))
    return out


def test_causal_trace_the_subject_has_left_its_position_after_block_0(traces):
    assert len(traces["resid"]) >= 50, f"only {len(traces['resid'])} facts hurt by the noise"
    at_subject = torch.stack([grid[1:, subject].mean() for subject, grid in traces["resid"]]).mean()
    at_last = torch.stack([grid[1:, -1].mean() for _, grid in traces["resid"]]).mean()
    assert at_subject < 0.1, f"restoring the subject after block 0 restores {at_subject:.2f} on average"
    assert at_last > 0.8, f"restoring the last position after block 0 restores {at_last:.2f} on average"


def test_causal_trace_mlp_0_at_the_last_position_recalls_the_fact(traces):
    last = torch.stack([grid[:, -1] for _, grid in traces["mlp"]]).mean(0)
    assert last[0] > 0.8, f"MLP 0's output at the last position restores {last[0]:.2f} on average"
    assert last[1:].max() < 0.5, f"a later MLP at the last position restores {last[1:].max():.2f} on average"
    assert last[0] > last[1:].max() + 0.3, "MLP 0 should restore far more than any later MLP"


# ---------------------------------------------------------------- modular addition

@pytest.fixture(scope="module")
def modular_run():
    model = mi_course.load_model("modular-addition", mode="lite", device="cpu")
    p = model.cfg.d_vocab_out
    tokens = modular.all_pairs(p)
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
    return model, p, tokens, logits[:, -1], cache["blocks.0.mlp.hook_post"][:, -1]


def test_modular_the_key_frequencies_carry_the_answer(modular_run):
    model, p, tokens, logits, _ = modular_run
    key = modular.key_frequencies(model.W_E, p)
    answers = modular.answers(tokens, p)
    kept = (modular.filter_frequencies(logits, p, key, keep=True).argmax(-1) == answers).float().mean()
    removed = (modular.filter_frequencies(logits, p, key, keep=False).argmax(-1) == answers).float().mean()
    assert kept > 0.99, f"with only the key frequencies {key} the accuracy is {kept:.1%}"
    assert removed < 0.05, f"without them the accuracy is still {removed:.1%}"


def test_modular_the_embedding_lies_on_circles(modular_run):
    model, p, *_ = modular_run
    for k in modular.key_frequencies(model.W_E, p):
        if k == 0:
            continue
        points = modular.embedding_circle(model.W_E, p, k)
        radius = points.norm(dim=-1)
        assert radius.std() / radius.mean() < 0.2, \
            f"frequency {k}: the radius varies by {radius.std() / radius.mean():.0%}"
        angle = torch.atan2(points[:, 1], points[:, 0])
        step = torch.remainder(angle[1:] - angle[:-1], 2 * math.pi)
        expected = 2 * math.pi * k / p
        # either orientation: the plane's two axes have no preferred sign
        error = torch.minimum((step - expected).abs(), (step - (2 * math.pi - expected)).abs())
        assert error.median() < 0.2, \
            f"frequency {k}: token x is not at angle 2 pi k x / p (median error {error.median():.2f})"


def test_modular_neurons_each_read_one_key_frequency(modular_run):
    model, p, _, _, acts = modular_run
    shares = modular.neuron_frequency_shares(acts, p)
    alive = acts.std(0) > 1e-3
    top = shares[alive].max(dim=1)
    key = torch.tensor(modular.key_frequencies(model.W_E, p))
    assert top.values.median() > 0.9, f"the median neuron holds {top.values.median():.0%} in its top frequency"
    assert torch.isin(top.indices, key).float().mean() > 0.9, "fewer than 90% of neurons read a key frequency"
