"""The canonical patching, causal tracing and Fourier helpers of lesson 11 on their own: exact properties on a
small random transformer and hand-made patterns, and the errors bad input gets."""

import math

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from mi_course.language import modular, patching
from mi_course.organisms import corpus


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32, n_ctx=8, d_vocab=11,
                                  act_fn="gelu", normalization_type="LN", device="cpu", seed=0)
    return HookedTransformer(cfg).eval()


def pair():
    g = torch.Generator().manual_seed(1)
    clean = torch.randint(0, 11, (3, 6), generator=g)
    corrupted = clean.clone()
    corrupted[:, 3] = (clean[:, 3] + 1) % 11
    return clean, corrupted


def metric(logits):
    return logits[:, -1, 0].mean().item() - logits[:, -1, 1].mean().item()


def test_logit_diff_reads_the_last_position_per_prompt():
    logits = torch.zeros(2, 2, 3)
    logits[:, -1] = torch.tensor([[1.0, 2.0, 5.0], [0.0, -1.0, 3.0]])
    torch.testing.assert_close(patching.logit_diff(logits, torch.tensor([2, 0]), torch.tensor([0, 1])),
                               torch.tensor([4.0, 1.0]))
    with pytest.raises(ValueError, match="batch, pos, vocab"):
        patching.logit_diff(logits[0], torch.tensor([0]), torch.tensor([1]))


@pytest.mark.parametrize("kind", ["resid", "attn", "mlp"])
def test_positions_before_the_corruption_restore_nothing(tiny, kind):
    clean, corrupted = pair()
    grid = patching.activation_patching(tiny, clean, corrupted, metric, kind=kind, progress=False)
    assert grid.shape == (2, 6)
    assert grid[:, :3].abs().max() < 1e-4  # causal: the two runs agree there
    if kind == "resid":
        assert abs(grid[0, 3] - 1) < 1e-4  # the corrupted token itself, before block 0: all of it
        assert grid[0, 4:].abs().max() < 1e-4


def test_patching_every_head_of_a_layer_equals_patching_its_attention_output(tiny):
    clean, corrupted = pair()
    heads = patching.activation_patching(tiny, clean, corrupted, metric, kind="head", progress=False)
    for layer, head in [(0, 0), (1, 1)]:
        alone = patching.patch_heads(tiny, clean, corrupted, metric, [(layer, head)], position=None)
        assert abs(alone - heads[layer, head]) < 1e-4
    # both heads of block 0 at every position = block 0's attention output at every position
    both = patching.patch_heads(tiny, clean, corrupted, metric, [(0, 0), (0, 1)], position=None)
    name = "blocks.0.hook_attn_out"
    _, cache = tiny.run_with_cache(clean, names_filter=name)
    with torch.no_grad():
        value = metric(tiny.run_with_hooks(corrupted, fwd_hooks=[(name, lambda act, hook: cache[name])]))
        expected = patching.restored_fraction(value, metric(tiny(clean)), metric(tiny(corrupted)))
    assert abs(both - expected) < 1e-3
    assert all(not hp.fwd_hooks for hp in tiny.hook_dict.values())


def test_patching_rejects_bad_input(tiny):
    clean, corrupted = pair()
    with pytest.raises(ValueError, match="same shape"):
        patching.activation_patching(tiny, clean, corrupted[:, :5], metric, progress=False)
    with pytest.raises(ValueError, match="kind must be one of"):
        patching.activation_patching(tiny, clean, corrupted, metric, kind="neurons", progress=False)
    with pytest.raises(ValueError, match="nothing to restore"):
        patching.activation_patching(tiny, clean, clean, metric, progress=False)
    with pytest.raises(ValueError, match="position picks"):
        patching.activation_patching(tiny, clean, corrupted, metric, kind="resid", position=-1, progress=False)
    with pytest.raises(ValueError, match="layer must be"):
        patching.patch_heads(tiny, clean, corrupted, metric, [(5, 0)])
    with pytest.raises(ValueError, match="token ids"):
        patching.activation_patching(tiny, clean.float(), corrupted.float(), metric, progress=False)


def test_causal_trace_restores_the_noised_token_and_leaves_earlier_ones_alone(tiny):
    tokens = pair()[0][0]
    trace = patching.causal_trace(tiny, tokens, [2], answer=4, noise_std=3.0, n_samples=5, seed=0)
    assert trace.probs.shape == (2, 6)
    assert abs(trace.probs[0, 2] - trace.clean) < 1e-5          # the only noised token, restored before block 0
    torch.testing.assert_close(trace.probs[:, :2], torch.full((2, 2), trace.corrupted), atol=1e-5, rtol=0)
    torch.testing.assert_close(trace.probs[0, 3:], torch.full((3,), trace.corrupted), atol=1e-5, rtol=0)
    again = patching.causal_trace(tiny, tokens[None], [2], answer=4, noise_std=3.0, n_samples=5, seed=0)
    torch.testing.assert_close(again.probs, trace.probs)       # seeded
    mlp = patching.causal_trace(tiny, tokens, [2], answer=4, noise_std=3.0, n_samples=5, seed=0, kind="mlp")
    assert mlp.corrupted == trace.corrupted
    with pytest.raises(ValueError, match="kind must be one of"):
        patching.causal_trace(tiny, tokens, [2], 4, kind="head")
    with pytest.raises(ValueError, match="subject must be positions"):
        patching.causal_trace(tiny, tokens, [9], 4)
    with pytest.raises(ValueError, match="one prompt"):
        patching.causal_trace(tiny, pair()[0], [2], 4)


def test_subject_positions_and_fact_phrasings():
    from mi_course import load_model

    lm = load_model("lm", mode="lite", device="cpu")
    assert patching.subject_positions(lm, "The Corvin Tower is in", "Corvin Tower") == [2, 3]
    assert patching.subject_positions(lm, "Valmont is a city in", "Valmont") == [1]
    with pytest.raises(ValueError, match="does not occur"):
        patching.subject_positions(lm, "Valmont is a city in", "Orwick")
    for phrasing in (0, 1):
        facts = corpus.fact_prompts(phrasing=phrasing)
        assert len(facts) == 68 and all(f.subject in f.prompt for f in facts)
    assert corpus.fact_prompts(phrasing=1)[0].prompt.endswith("is located in the city of")
    with pytest.raises(ValueError, match="phrasing"):
        corpus.fact_prompts(phrasing=2)


def test_greater_than_corruption_sets_the_start_year_to_01():
    prompts = corpus.greater_than_prompts(5, seed=0)
    for p, c in zip(prompts, corpus.corrupt_greater_than(prompts)):
        assert c == p.prompt.replace(str(p.year), f"{p.year // 100}01")
    with pytest.raises(ValueError, match="should appear once"):
        corpus.corrupt_greater_than([corpus.GreaterThanPrompt("from 1732 to 1732", 1732)])


def test_filter_frequencies_splits_the_logits_in_two():
    p = 7
    logits = torch.randn(4, p, generator=torch.Generator().manual_seed(0))
    kept = modular.filter_frequencies(logits, p, [1, 3], keep=True)
    removed = modular.filter_frequencies(logits, p, [1, 3], keep=False)
    torch.testing.assert_close(kept + removed, logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(modular.filter_frequencies(logits, p, range(4)), logits, atol=1e-5, rtol=0)
    x = torch.arange(p, dtype=torch.float32)
    wave = torch.cos(2 * math.pi * 2 * x / p)[None]
    torch.testing.assert_close(modular.filter_frequencies(wave, p, [2]), wave, atol=1e-5, rtol=0)
    assert modular.filter_frequencies(wave, p, [2], keep=False).abs().max() < 1e-5
    with pytest.raises(ValueError, match="frequencies must be in"):
        modular.filter_frequencies(logits, p, [4])
    with pytest.raises(ValueError, match="end in p"):
        modular.filter_frequencies(logits[:, :5], p, [1])


def test_embedding_circle_and_neuron_shares_on_hand_made_patterns():
    p, k = 13, 3
    x = torch.arange(p, dtype=torch.float32)
    W_E = torch.zeros(p + 1, 4)
    W_E[:p, 0], W_E[:p, 1] = torch.cos(2 * math.pi * k * x / p), torch.sin(2 * math.pi * k * x / p)
    W_E[:p, 2] = 0.1 * torch.cos(2 * math.pi * 5 * x / p)
    points = modular.embedding_circle(W_E, p, k)
    radius = points.norm(dim=-1)
    assert torch.allclose(radius, radius.mean().expand_as(radius), atol=1e-4)
    with pytest.raises(ValueError, match="k must be a frequency"):
        modular.embedding_circle(W_E, p, 0)
    a, b = modular.all_pairs(p)[:, 0].float(), modular.all_pairs(p)[:, 1].float()
    w = 2 * math.pi * 4 / p
    acts = torch.stack([torch.cos(w * a) * torch.cos(w * b) + 2.0, torch.sin(w * (a + b))], dim=1)
    shares = modular.neuron_frequency_shares(acts, p)
    assert shares.shape == (2, p // 2 + 1)
    torch.testing.assert_close(shares[:, 4], torch.ones(2), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="p \\* p"):
        modular.neuron_frequency_shares(acts[:10], p)
