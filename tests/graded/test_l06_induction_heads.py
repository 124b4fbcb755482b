"""Graded tests for lesson 06 (induction heads).

Expected values come from a different route than the reference solution: explicit loops over batch, heads
and positions, hand-made attention patterns, copies of a model with a head's weights zeroed (instead of a
hook), and eigenvalues of the full d_vocab x d_vocab matrix. Tiny random transformers do most of the
work; the shipped lite checkpoints check that the learner's code reproduces the measurements on its model
card (read from the card, never hard-coded: the checkpoints may be retrained).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from transformer_lens import ActivationCache, HookedTransformer, HookedTransformerConfig

import mi_course
from mi_course.grading.asserts import assert_close, assert_shape, call_unmutated, expect_value_error
from mi_course.grading.judge import drive
from mi_course.grading.secret_seed import learner_generator, run_seed

LESSON = "l06_induction_heads"


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- models and inputs


def tiny_model(n_layers: int = 2, n_heads: int = 3, d_vocab: int = 30, n_ctx: int = 40, seed: int = 0,
               d_model: int = 24, d_head: int = 8) -> HookedTransformer:
    """A small attention-only transformer with random weights: sharper attention than the default init
    (so that different stripes of a pattern really differ) and a nonzero output bias."""
    cfg = HookedTransformerConfig(n_layers=n_layers, d_model=d_model, n_heads=n_heads, d_head=d_head,
                                  attn_only=True, n_ctx=n_ctx, d_vocab=d_vocab, normalization_type=None,
                                  seed=seed)
    model = HookedTransformer(cfg).eval()
    g = gen(seed + 100)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("W_Q", "W_K")):
                p.copy_(torch.randn(p.shape, generator=g) * 0.6)
            elif name.endswith("b_O"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model


def tiny_tokens(model, seq_len: int, batch: int, seed: int) -> torch.Tensor:
    """[bos=0, r, r] for a tokenizer-less model, r uniform in 1 .. d_vocab-1."""
    half = torch.randint(1, model.cfg.d_vocab, (batch, seq_len), generator=learner_generator(seed))
    return torch.cat([torch.zeros(batch, 1, dtype=torch.long), half, half], dim=1)


def card_tokens(model, seq_len: int, batch: int, seed: int) -> torch.Tensor:
    """The tokens the model cards were measured on: [bos, r, r], r drawn from the non-special ids (in
    increasing order) with torch.randint and a generator seeded with ``seed``."""
    special = set(model.tokenizer.all_special_ids)
    allowed = torch.tensor([i for i in range(model.cfg.d_vocab) if i not in special])
    half = allowed[torch.randint(len(allowed), (batch, seq_len), generator=learner_generator(seed))]
    bos = torch.full((batch, 1), model.tokenizer.bos_token_id)
    return torch.cat([bos, half, half], dim=1)


def patterns_of(model, tokens) -> list[torch.Tensor]:
    _, cache = model.run_with_cache(tokens)
    return [cache[f"blocks.{layer}.attn.hook_pattern"] for layer in range(model.cfg.n_layers)]


def random_patterns(batch, heads, pos, g, sharpness=2.5) -> torch.Tensor:
    """Causal attention patterns [batch, head, query, key]: rows sum to 1, nothing above the diagonal."""
    scores = torch.randn(batch, heads, pos, pos, generator=g) * sharpness
    scores = scores.masked_fill(~torch.ones(pos, pos, dtype=torch.bool).tril(), float("-inf"))
    return scores.softmax(dim=-1)


def pattern_cache(patterns: list[torch.Tensor], model) -> ActivationCache:
    return ActivationCache({f"blocks.{l}.attn.hook_pattern": p for l, p in enumerate(patterns)}, model)


# ---------------------------------------------------------------- independent references


def loop_stripe(patterns, queries, key_of) -> torch.Tensor:
    """[layer, head]: mean over batch and the given queries q of pattern[b, h, q, key_of(q)], one by one."""
    out = torch.zeros(len(patterns), patterns[0].shape[1])
    for layer, p in enumerate(patterns):
        for h in range(p.shape[1]):
            values = [p[b, h, q, key_of(q)].item() for b in range(p.shape[0]) for q in queries]
            out[layer, h] = sum(values) / len(values)
    return out


def loop_next_token_loss(logits, tokens) -> torch.Tensor:
    """-log softmax(logits[b, i])[tokens[b, i + 1]], one prediction at a time, in float64."""
    batch, pos, _ = logits.shape
    out = torch.zeros(batch, pos - 1, dtype=torch.float64)
    for b in range(batch):
        for i in range(pos - 1):
            row = logits[b, i].double()
            out[b, i] = torch.logsumexp(row, dim=0) - row[tokens[b, i + 1]]
    return out


def loss_without_head(model, tokens, layer, head, mean_z=None) -> float:
    """Mean loss of a copy of ``model`` whose head (layer, head) writes nothing (W_O zeroed) or, with
    ``mean_z``, always writes mean_z @ W_O (folded into the layer's output bias)."""
    m = copy.deepcopy(model)
    attn = m.blocks[layer].attn
    with torch.no_grad():
        if mean_z is not None:
            attn.b_O += mean_z @ attn.W_O[head]
        attn.W_O[head] = 0.0
        logits = m(tokens)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten()).item()


def loop_mean_z(model, tokens, layer, head) -> torch.Tensor:
    _, cache = model.run_with_cache(tokens)
    z = cache[f"blocks.{layer}.attn.hook_z"]  # [batch, pos, head, d_head]
    total = torch.zeros(model.cfg.d_head)
    for b in range(z.shape[0]):
        for p in range(z.shape[1]):
            total += z[b, p, head]
    return total / (z.shape[0] * z.shape[1])


def attached_hooks(model) -> list[str]:
    return [name for name, hp in model.hook_dict.items() if hp._forward_hooks or hp._backward_hooks]


def full_ov_score(model, layer, head) -> float:
    """Re(sum lambda) / sum |lambda| from the explicit d_vocab x d_vocab matrix, in float64."""
    W_E, W_U = model.W_E.double(), model.W_U.double()
    full = W_E @ model.W_V[layer, head].double() @ model.W_O[layer, head].double() @ W_U
    eig = torch.linalg.eigvals(full)
    total = eig.abs().sum()
    return 0.0 if total == 0 else (eig.sum().real / total).item()


@pytest.fixture(scope="module")
def card2():
    return mi_course.model_card("attn-only-2l", mode="lite")["measured"]


# ---------------------------------------------------------------- repeated_random_tokens


@pytest.mark.exercise("repeated_random_tokens", points=2)
def test_tokens_layout(impl, lite2):
    n, batch = 12, 5
    tokens = assert_shape(impl.repeated_random_tokens(lite2, n, batch, 0), (batch, 2 * n + 1),
                          f"repeated_random_tokens(model, seq_len={n}, batch={batch}) ([batch, 2 * seq_len + 1])")
    assert tokens.dtype == torch.long, f"token ids should be torch.long (int64), got {tokens.dtype}"
    bos = lite2.tokenizer.bos_token_id
    assert (tokens[:, 0] == bos).all(), \
        f"position 0 of every row must be the bos token (model.tokenizer.bos_token_id = {bos})"
    assert torch.equal(tokens[:, 1:n + 1], tokens[:, n + 1:]), \
        "positions seq_len+1 .. 2*seq_len must repeat positions 1 .. seq_len exactly (the random half, copied)"
    body = tokens[:, 1:]
    assert ((body >= 0) & (body < lite2.cfg.d_vocab)).all(), "every id must be in 0 .. d_vocab - 1"
    special = set(lite2.tokenizer.all_special_ids) & set(body.flatten().tolist())
    assert not special, (f"the random half contains special tokens {sorted(special)} (bos/eos/pad/unk): draw "
                         "only from the ids that are not in model.tokenizer.all_special_ids")
    assert not all(torch.equal(tokens[0], row) for row in tokens[1:]), \
        "every row should get its own random half, not one row repeated batch times"


def _tokens_and_rng_states(impl, model, seq_len, batch, seed):
    """Driver: the tokens, with the global random state before and after the call (where the learner's code runs)."""
    before = torch.get_rng_state()
    tokens = impl.repeated_random_tokens(model, seq_len, batch, seed)
    return {"tokens": tokens, "before": before, "after": torch.get_rng_state()}


@pytest.mark.exercise("repeated_random_tokens", points=1)
def test_tokens_are_seeded_and_uniform(impl, lite2):
    got = drive(impl, _tokens_and_rng_states, lite2, 60, 64, 3)
    a, state = got["tokens"], got["before"]
    assert torch.equal(got["after"], state), \
        "the global random state changed: use torch.Generator().manual_seed(seed), not torch.manual_seed(seed)"
    assert torch.equal(a, impl.repeated_random_tokens(lite2, 60, 64, 3)), "the same seed must give the same tokens"
    assert not torch.equal(a, impl.repeated_random_tokens(lite2, 60, 64, 4)), "another seed should give other tokens"
    special = set(lite2.tokenizer.all_special_ids) & set(a[:, 1:].flatten().tolist())
    assert not special, (f"the random halves contain special tokens {sorted(special)} (bos/eos/pad/unk): draw "
                         "only from the ids that are not in model.tokenizer.all_special_ids")
    distinct = len(set(a[:, 1:61].flatten().tolist()))
    # 3,840 uniform draws from ~1,590 ids hit about 1,450 distinct ids
    assert distinct > 1100, (f"only {distinct} distinct ids in 3,840 draws: draw uniformly from the whole "
                             "vocabulary (minus the special tokens)")


def _tokens_with_tokenizer_of(impl, model, donor, seq_len, batch):
    """Driver: ``model`` gets ``donor``'s tokenizer (a tokenizer does not cross with a test model) first."""
    model.tokenizer = donor.tokenizer
    return impl.repeated_random_tokens(model, seq_len, batch)


@pytest.mark.exercise("repeated_random_tokens", points=1)
def test_tokens_validate_lengths(impl, lite2):
    n_ctx = lite2.cfg.n_ctx
    longest = (n_ctx - 1) // 2
    assert impl.repeated_random_tokens(lite2, longest, 1).shape == (1, 2 * longest + 1), \
        f"seq_len={longest} fits the context of {n_ctx} (2 * seq_len + 1 = {2 * longest + 1})"
    odd = tiny_model(n_layers=1, n_ctx=21)  # 2 * 10 + 1 == n_ctx: exactly the context, which fits
    odd.tokenizer = lite2.tokenizer
    try:
        tokens = drive(impl, _tokens_with_tokenizer_of, odd, lite2, 10, 2)
    except ValueError as err:
        pytest.fail(f"seq_len=10 fills a context of 21 exactly (2 * 10 + 1 = 21) and must be accepted: reject only "
                    f"2 * seq_len + 1 > n_ctx ({err})")
    assert_shape(tokens, (2, 21), "repeated_random_tokens(model with n_ctx=21, 10, 2)")
    too_long = f"2 * seq_len + 1 = {2 * longest + 3} is longer than n_ctx = {n_ctx}"
    for seq_len, batch, rule in [(longest + 1, 1, too_long), (0, 2, "seq_len must be at least 1"),
                                 (3, 0, "batch must be at least 1")]:
        expect_value_error(impl.repeated_random_tokens, lite2, seq_len, batch,
                           what=f"repeated_random_tokens(model, seq_len={seq_len}, batch={batch})", expected=rule)


# ---------------------------------------------------------------- per_token_loss


@pytest.mark.exercise("per_token_loss", points=2)
def test_per_token_loss_matches_loop(impl):
    model = tiny_model()
    tokens = torch.randint(model.cfg.d_vocab, (3, 9), generator=gen(1))
    out = assert_shape(call_unmutated(impl.per_token_loss, model, tokens), (3, 8),
                       "per_token_loss(model, tokens) ([batch, pos - 1])")
    out = out.detach().double()
    logits = model(tokens).detach()
    expected = loop_next_token_loss(logits, tokens)
    lp = logits.log_softmax(-1)
    wrong = {
        "The logits at position i predict token i + 1: you scored the current token (tokens[:, :-1]).":
            -lp[:, :-1].gather(-1, tokens[:, :-1, None])[..., 0],
        "Off by one: use logits[:, :-1] (positions 0 .. pos-2) against tokens[:, 1:], not logits[:, 1:].":
            -lp[:, 1:].gather(-1, tokens[:, 1:, None])[..., 0],
        "log_softmax goes over the vocabulary (dim=-1), not over positions.":
            -logits.log_softmax(1)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0],
        "log_softmax goes over the vocabulary (dim=-1), not over the batch.":
            -logits.log_softmax(0)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0],
        "The loss is minus the log-probability: you returned log p (wrong sign).": -expected,
        "Take the log of the softmax (log_softmax), not the probability itself.":
            -logits.softmax(-1)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0],
    }
    for message, value in wrong.items():
        if torch.allclose(out, value.double(), atol=1e-4):
            pytest.fail(message)
    assert_close(out, expected, "per_token_loss", atol=1e-4,
                 hint="entry [b, i] is -log softmax(logits[b, i])[tokens[b, i + 1]].")


@pytest.mark.exercise("per_token_loss", points=1)
def test_per_token_loss_on_the_lite_model(impl, lite2):
    text = "Nora Quill found a lamp by the gate , and Nora Quill"
    tokens = lite2.to_tokens(text)
    out = assert_shape(call_unmutated(impl.per_token_loss, lite2, tokens), (1, tokens.shape[1] - 1),
                       "per_token_loss on one sentence")
    assert not out.requires_grad, "no gradients needed: run the model under torch.no_grad() (or detach)"
    with torch.no_grad():
        expected = loop_next_token_loss(lite2(tokens), tokens)
    assert_close(out.double(), expected, "per_token_loss on the lite model", atol=1e-3)


# ---------------------------------------------------------------- prev_token_scores


@pytest.mark.exercise("prev_token_scores", points=2)
def test_prev_token_scores_hand_made_patterns(impl):
    model = tiny_model(n_layers=3, n_heads=3)  # three layers: the number of layers comes from the cache
    batch, pos = 4, 9
    g = gen(2)
    patterns = [random_patterns(batch, 3, pos, g) for _ in range(3)]
    out = impl.prev_token_scores(pattern_cache(patterns, model))
    if isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[0] != 3:
        pytest.fail(f"A cache of a 3-layer model gave {out.shape[0]} rows: loop over every layer in the cache "
                    f"(e.g. model.cfg.n_layers), not a fixed number.")
    out = assert_shape(out, (3, 3), "prev_token_scores(cache) ([n_layers, n_heads])")
    out = out.detach().float()
    expected = loop_stripe(patterns, range(1, pos), lambda q: q - 1)
    wrong = {
        "Position 0 (bos) has no previous token: average over queries 1 .. pos-1 only, not over all pos.":
            expected * (pos - 1) / pos,
        "You measured attention to the current token (the main diagonal): the previous token is key q - 1.":
            loop_stripe(patterns, range(1, pos), lambda q: q),
        "The pattern is [batch, head, query, key]: row q is the query. You read attention from q - 1 to q "
        "(query and key swapped), which causal masking makes 0.": torch.zeros(3, 3),
        "Average over the whole batch, not only its first sequence.":
            loop_stripe([p[:1] for p in patterns], range(1, pos), lambda q: q - 1),
    }
    for message, value in wrong.items():
        if torch.allclose(out, value, atol=1e-5):
            pytest.fail(message)
    assert_close(out, expected, "prev_token_scores", atol=1e-5,
                 hint="mean over batch and queries q = 1 .. pos-1 of pattern[b, head, q, q - 1].")


@pytest.mark.exercise("prev_token_scores", points=1)
def test_prev_token_scores_exact_heads(impl):
    """Head 0 always looks one back (score 1), head 1 at itself (0), head 2 at bos (only q = 1 counts)."""
    model = tiny_model(n_layers=1, n_heads=3)
    batch, pos = 2, 7
    p = torch.zeros(batch, 3, pos, pos)
    q = torch.arange(1, pos)
    p[:, 0, 0, 0] = 1.0
    p[:, 0, q, q - 1] = 1.0
    p[:, 1, torch.arange(pos), torch.arange(pos)] = 1.0
    p[:, 2, :, 0] = 1.0
    out = assert_shape(impl.prev_token_scores(pattern_cache([p], model)), (1, 3), "prev_token_scores(cache)")
    if abs(out[0, 0].item() - (pos - 1) / pos) < 1e-5:
        pytest.fail("A perfect previous-token head should score 1: leave query 0 (bos, no previous token) out "
                    "of the mean.")
    assert_close(out.float(), torch.tensor([[1.0, 0.0, 1 / (pos - 1)]]), "prev_token_scores on hand-made heads",
                 hint="head 0 attends to q - 1 at every q >= 1 (score 1); head 2 always attends to bos.")


@pytest.mark.exercise("prev_token_scores", points=1)
def test_prev_token_scores_on_the_lite_model(impl, lite2, card2):
    tokens = card_tokens(lite2, 50, 16, 0)
    _, cache = lite2.run_with_cache(tokens)
    out = assert_shape(impl.prev_token_scores(cache), (2, lite2.cfg.n_heads), "prev_token_scores on the lite model")
    expected = loop_stripe([cache["pattern", l] for l in range(2)], range(1, tokens.shape[1]), lambda q: q - 1)
    assert_close(out.float(), expected, "prev_token_scores on the lite 2-layer model", atol=1e-5)
    card = torch.tensor(card2["prev_token_scores"])
    assert_close(out.float(), card, "prev_token_scores vs. the model card (same tokens)", atol=0.01)


# ---------------------------------------------------------------- induction_scores


TOKEN_MAKERS = {"tiny": tiny_tokens, "card": card_tokens}


def _induction_scores_on_fixed_tokens(impl, maker, model, seq_len, batch, seed):
    """Driver: induction_scores with the learner's repeated_random_tokens replaced by the test's own tokens
    (``TOKEN_MAKERS[maker]``); returns the scores and the (seq_len, batch, seed) of every call to the stand-in."""
    calls = []

    def fake(model, seq_len, batch, seed=0):
        calls.append((seq_len, batch, seed))
        return TOKEN_MAKERS[maker](model, seq_len, batch, seed)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(impl, "repeated_random_tokens", fake, raising=False)
        out = impl.induction_scores(model, seq_len, batch, seed)
    return {"out": out, "calls": calls}


@pytest.mark.exercise("induction_scores", points=2)
def test_induction_scores_match_loop(impl):
    model = tiny_model(n_layers=3, n_heads=3, n_ctx=40)  # three layers: read the number from model.cfg
    n, batch, seed = 9, 4, run_seed(5)
    got = drive(impl, _induction_scores_on_fixed_tokens, "tiny", model, n, batch, seed)
    out, calls = got["out"], got["calls"]
    if isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[0] != 3:
        pytest.fail(f"A 3-layer model gave {out.shape[0]} rows: loop over range(model.cfg.n_layers), not a fixed "
                    f"number of layers.")
    out = assert_shape(out, (3, 3), "induction_scores(model, seq_len, batch) ([n_layers, n_heads])")
    assert calls, "build the tokens by calling repeated_random_tokens(model, seq_len, batch, seed)"
    assert tuple(calls[-1]) == (n, batch, seed), \
        f"call repeated_random_tokens(model, seq_len, batch, seed) with your arguments; got {tuple(calls[-1])}"
    patterns = patterns_of(model, tiny_tokens(model, n, batch, seed))
    out = out.detach().float()
    second = range(n + 1, 2 * n + 1)
    wrong = {
        "Off by one: you measured attention to the earlier occurrence of the same token (key q - seq_len); "
        "an induction head attends to the token right after it (key q - seq_len + 1).":
            loop_stripe(patterns, second, lambda q: q - n),
        "Off by one: the token after the earlier occurrence is at q - seq_len + 1, not q - seq_len + 2.":
            loop_stripe(patterns, second, lambda q: q - n + 2),
        "Only the second copy's queries count: q = seq_len + 1 .. 2 * seq_len (you started at seq_len, the "
        "last token of the first copy).": loop_stripe(patterns, range(n, 2 * n + 1), lambda q: q - n + 1),
        "The second copy starts at q = seq_len + 1 (position 0 is bos): include its first token.":
            loop_stripe(patterns, range(n + 2, 2 * n + 1), lambda q: q - n + 1),
    }
    for message, value in wrong.items():
        if torch.allclose(out, value, atol=1e-5):
            pytest.fail(message)
    assert_close(out, loop_stripe(patterns, second, lambda q: q - n + 1), "induction_scores", atol=1e-5,
                 hint="mean over batch and q = seq_len+1 .. 2*seq_len of pattern[b, head, q, q - seq_len + 1].")


@pytest.mark.exercise("induction_scores", points=1)
def test_induction_scores_on_the_lite_model(impl, lite2, card2):
    out = assert_shape(drive(impl, _induction_scores_on_fixed_tokens, "card", lite2, 50, 16, 0)["out"],
                       (2, lite2.cfg.n_heads),
                       "induction_scores on the lite 2-layer model")
    assert_close(out.float(), torch.tensor(card2["induction_scores"]),
                 "induction_scores vs. the model card (same tokens)", atol=0.01)


@pytest.mark.exercise("induction_scores", points=1)
def test_induction_scores_end_to_end(impl, lite2, card2):
    """With the learner's own tokens: other random tokens, so only roughly the card's numbers."""
    out = assert_shape(impl.induction_scores(lite2, 50, 16, 1), (2, lite2.cfg.n_heads),
                       "induction_scores(model, 50, 16, seed=1) with your repeated_random_tokens")
    assert_close(out.float(), torch.tensor(card2["induction_scores"]),
                 "induction_scores on your own repeated random tokens", atol=0.06,
                 hint="far from the card's values: check repeated_random_tokens first "
                      "(check('06.repeated_random_tokens')).")


# ---------------------------------------------------------------- find_induction_heads


def _find_heads_on_fixed_scores(impl, scores, *args):
    """Driver: find_induction_heads(*args) with the learner's induction_scores replaced by a stand-in that
    returns ``scores``; returns what it found and the (seq_len, batch, seed) of every call to the stand-in."""
    calls = []

    def fake_scores(model, seq_len=50, batch=16, seed=0):
        calls.append((seq_len, batch, seed))
        return scores.clone()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(impl, "induction_scores", fake_scores, raising=False)
        found = impl.find_induction_heads(*args)
    return {"found": found, "calls": calls}


@pytest.mark.exercise("find_induction_heads", points=2)
def test_find_heads_thresholds_and_order(impl):
    scores = torch.tensor([[0.125, 0.75, 0.0625], [0.5, 0.25, 0.875]])  # exact in binary
    model = tiny_model()
    got = drive(impl, _find_heads_on_fixed_scores, scores, model, 0.25, 7, 3, 2)
    found, calls = got["found"], [tuple(c) for c in got["calls"]]
    assert calls and calls[-1] == (7, 3, 2), \
        f"get the scores with induction_scores(model, seq_len, batch, seed) and your arguments; got {calls}"
    assert isinstance(found, list), f"return a list of (layer, head) tuples, got {type(found).__name__}"
    assert all(isinstance(x, tuple) and len(x) == 2 for x in found), "each element is a (layer, head) tuple"
    assert all(type(v) is int for x in found for v in x), "layer and head should be Python ints (use int(...))"
    expected = [(1, 2), (0, 1), (1, 0)]  # scores 0.875, 0.75, 0.5; 0.25 is not strictly above 0.25
    if set(found) == set(expected) | {(1, 1)}:
        pytest.fail("Strictly above the threshold: the head scoring exactly 0.25 is not included.")
    if {(h, l) for l, h in found} == set(expected):
        pytest.fail("Return (layer, head) tuples, not (head, layer).")
    if set(found) == set(expected) and found != expected:
        pytest.fail(f"Sort by score, highest first: expected {expected}, got {found}.")
    assert found == expected, f"expected {expected} (scores 0.875, 0.75, 0.5 above 0.25), got {found}"
    scores = torch.tensor([[0.5, 0.75, 0.5], [0.75, 0.125, 0.5]])  # ties: equal scores keep (layer, head) order
    found = drive(impl, _find_heads_on_fixed_scores, scores, model, 0.25, 7, 3, 2)["found"]
    expected = [(0, 1), (1, 0), (0, 0), (0, 2), (1, 2)]
    if isinstance(found, list) and sorted(found) == sorted(expected) and found != expected:
        pytest.fail(f"Equal scores should come in (layer, head) order (a stable sort by score, highest first): "
                    f"expected {expected}, got {found}.")
    assert found == expected, f"with tied scores, expected {expected}, got {found}"
    assert drive(impl, _find_heads_on_fixed_scores, scores, model, 0.99)["found"] == [], \
        "no head above the threshold: return an empty list"


@pytest.mark.exercise("find_induction_heads", points=1)
def test_find_heads_on_the_lite_models(impl, lite2, lite1, card2):
    layer, head = card2["induction_head"]
    threshold = card2["induction_scores"][layer][head] / 2
    found = impl.find_induction_heads(lite2, threshold)
    assert (layer, head) in found, (f"the 2-layer model's induction head {layer}.{head} (card score "
                                    f"{2 * threshold:.2f}) should be above the threshold {threshold:.2f}; got {found}")
    assert impl.find_induction_heads(lite1, threshold) == [], \
        "a 1-layer attention-only model cannot form an induction head, yet you found one"


# ---------------------------------------------------------------- ablate_head_loss


@pytest.mark.exercise("ablate_head_loss", points=2)
def test_zero_ablation_matches_zeroed_weights(impl):
    model = tiny_model(n_layers=2, n_heads=3)
    tokens = tiny_tokens(model, 8, 4, run_seed(7))
    clean = F.cross_entropy(model(tokens)[:, :-1].flatten(0, 1), tokens[:, 1:].flatten()).item()
    for layer, head in [(0, 0), (0, 2), (1, 1)]:
        out = call_unmutated(impl.ablate_head_loss, model, tokens, layer, head, "zero")
        assert isinstance(out, float), f"return the loss as a Python float (.item()), got {type(out).__name__}"
        expected = loss_without_head(model, tokens, layer, head)
        if abs(out - clean) < 1e-6:
            pytest.fail("The loss did not change: is the hook on blocks.{layer}.attn.hook_z, and does it return "
                        "(or change in place) the ablated z?")
        assert abs(out - expected) < 1e-4, (
            f"zero-ablating head {layer}.{head}: got loss {out:.5f}, expected {expected:.5f} (clean {clean:.5f}). "
            "z is [batch, pos, head, d_head]: set z[:, :, head] to 0, all positions, that head only.")
    assert abs(impl.ablate_head_loss(model, tokens, 1, 2) - loss_without_head(model, tokens, 1, 2)) < 1e-4, \
        "kind should default to 'zero'"


@pytest.mark.exercise("ablate_head_loss", points=2)
def test_mean_ablation_matches_folded_bias(impl):
    model = tiny_model(n_layers=2, n_heads=3)
    tokens = tiny_tokens(model, 8, 4, run_seed(8))
    for layer, head in [(0, 1), (1, 0)]:
        out = call_unmutated(impl.ablate_head_loss, model, tokens, layer, head, "mean")
        assert isinstance(out, float), f"return the loss as a Python float, got {type(out).__name__}"
        mean_z = loop_mean_z(model, tokens, layer, head)
        expected = loss_without_head(model, tokens, layer, head, mean_z)
        if abs(out - loss_without_head(model, tokens, layer, head)) < 1e-5:
            pytest.fail("kind='mean' gave the zero-ablation loss: replace z with its mean, not with zeros.")
        _, cache = model.run_with_cache(tokens)
        z = cache[f"blocks.{layer}.attn.hook_z"][:, :, head]
        # the same, with the mean over the batch only (a different vector at each position)
        m = copy.deepcopy(model)
        hooks = [(f"blocks.{layer}.attn.hook_z",
                  lambda act, hook: torch.cat([act[:, :, :head], z.mean(0).expand_as(act[:, :, head])[:, :, None],
                                               act[:, :, head + 1:]], dim=2))]
        with torch.no_grad():
            per_pos = F.cross_entropy(m.run_with_hooks(tokens, fwd_hooks=hooks)[:, :-1].flatten(0, 1),
                                      tokens[:, 1:].flatten()).item()
        if abs(out - per_pos) < 1e-5 and abs(per_pos - expected) > 1e-4:
            pytest.fail("Average z over the batch AND the positions: one d_head vector for every position.")
        assert abs(out - expected) < 1e-4, (
            f"mean-ablating head {layer}.{head}: got {out:.5f}, expected {expected:.5f}. Replace z[:, :, head] "
            "by z[:, :, head] averaged over batch and positions of a clean run on the same tokens.")


def _ablations_on_one_model(impl, model, tokens):
    """Driver: several ablate_head_loss calls on one model, with what the model looks like after each (hooks
    attached, outputs, weights). It stops early where the test is bound to fail on what it has so far."""
    got = {"first": impl.ablate_head_loss(model, tokens, 0, 1, "zero"), "after_zero": attached_hooks(model)}
    if got["after_zero"]:
        return got
    impl.ablate_head_loss(model, tokens, 1, 2, "mean")
    got["after_mean"] = attached_hooks(model)
    if got["after_mean"]:
        return got
    with torch.no_grad():
        got["logits"] = model(tokens)
    got["weights"] = {k: v.clone() for k, v in model.state_dict().items()}
    got["again"] = impl.ablate_head_loss(model, tokens, 0, 1, "zero")
    model.add_hook("blocks.0.hook_resid_pre", lambda x, hook: None)  # a hook of the caller's own
    got["left"] = {}
    for kind in ("zero", "mean"):
        impl.ablate_head_loss(model, tokens, 1, 0, kind)
        got["left"][kind] = attached_hooks(model)
        if got["left"][kind] != ["blocks.0.hook_resid_pre"]:
            break
    model.reset_hooks()
    return got


@pytest.mark.exercise("ablate_head_loss", points=1)
def test_ablation_leaves_no_hooks(impl):
    model = tiny_model(n_layers=2, n_heads=3)
    tokens = tiny_tokens(model, 8, 3, run_seed(9))
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        clean = model(tokens)
    got = drive(impl, _ablations_on_one_model, model, tokens)
    first = got["first"]
    assert not got["after_zero"], (f"hooks still attached after the call: {got['after_zero']}. Use "
                                   "model.run_with_hooks, or `with model.hooks(...)`, which remove them.")
    assert not got["after_mean"], f"hooks still attached after a mean ablation: {got['after_mean']}"
    assert torch.allclose(got["logits"], clean), "after the call the model computes something else"
    assert all(torch.equal(v, weights[k]) for k, v in got["weights"].items()), \
        "a weight changed: ablate with a hook on z, do not edit W_O"
    again = got["again"]
    assert abs(first - again) < 1e-6, "the same ablation gave another loss the second time: a hook from the " \
                                      "earlier calls is still acting"
    for kind in ("zero", "mean"):
        left = got["left"][kind]
        assert left == ["blocks.0.hook_resid_pre"], (
            f"kind={kind!r}: the caller's own hook on blocks.0.hook_resid_pre should still be attached (and no other), "
            f"got {left}. Remove only your hook (model.run_with_hooks or `with model.hooks(...)`), not every hook "
            f"(model.reset_hooks()).")


def _ablation_that_fails(impl, model, tokens, kind):
    """Driver: one ablate_head_loss call to count its forward passes, then one whose last forward pass raises;
    returns that RuntimeError's message (None if nothing was raised) and the hooks attached afterwards."""
    original = model.unembed.forward
    calls = {"n": 0, "fail_at": None}

    def forward(x, _original=original, _calls=calls):
        _calls["n"] += 1
        if _calls["n"] == _calls["fail_at"]:
            raise RuntimeError("forward failed on purpose (test)")
        return _original(x)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(model.unembed, "forward", forward)
        impl.ablate_head_loss(model, tokens, 1, 0, kind)
        calls["fail_at"], calls["n"] = 2 * calls["n"], calls["n"]  # fail in the last forward pass of a call
        error = None
        try:
            impl.ablate_head_loss(model, tokens, 1, 0, kind)
        except RuntimeError as err:
            error = str(err)
    return {"error": error, "left": attached_hooks(model),
            "hook_z": len(model.blocks[1].attn.hook_z._forward_hooks)}


@pytest.mark.exercise("ablate_head_loss", points=2)
def test_ablation_removes_hooks_on_error(impl):
    for kind in ("zero", "mean"):
        model = tiny_model(n_layers=2, n_heads=3)
        tokens = tiny_tokens(model, 6, 2, run_seed(10))
        got = drive(impl, _ablation_that_fails, model, tokens, kind)
        with pytest.raises(RuntimeError, match="on purpose"):
            if got["error"] is not None:
                raise RuntimeError(got["error"])
        left = got["left"]
        assert not left and not got["hook_z"], (
            f"kind={kind!r}: the forward pass raised and hooks stayed attached: {left}. Remove hooks in a "
            "`finally:` block, or use `with model.hooks(...)` / model.run_with_hooks, which always do.")


REJECTED_ABLATIONS = [(2, 0, "zero"), (-1, 0, "zero"), (0, 3, "zero"), (0, -1, "mean"), (0, 0, "max")]


def _hooks_after_rejected_ablations(impl, model, tokens, cases):
    """Driver: the hooks attached to one model after the rejected calls ``cases`` (their ValueErrors are
    checked in the test)."""
    for layer, head, kind in cases:
        try:
            impl.ablate_head_loss(model, tokens, layer, head, kind)
        except ValueError:
            pass
    return attached_hooks(model)


@pytest.mark.exercise("ablate_head_loss", points=1)
def test_ablation_validates_inputs(impl):
    model = tiny_model(n_layers=2, n_heads=3)
    tokens = tiny_tokens(model, 5, 2, run_seed(11))
    for layer, head, kind in REJECTED_ABLATIONS:
        expect_value_error(impl.ablate_head_loss, model, tokens, layer, head, kind,
                           what=f"ablate_head_loss(2-layer model, tokens, {layer}, {head}, {kind!r})",
                           expected="layer in 0 .. n_layers - 1, head in 0 .. n_heads - 1 (negative indices must not "
                                    "wrap around) and kind 'zero' or 'mean': check them before anything else")
    assert not drive(impl, _hooks_after_rejected_ablations, model, tokens, REJECTED_ABLATIONS), \
        "a rejected call should not leave hooks attached"


# ---------------------------------------------------------------- ov_copying_score


@pytest.mark.exercise("ov_copying_score", points=2)
def test_ov_score_matches_full_matrix(impl):
    model = tiny_model(n_layers=2, n_heads=3, d_vocab=30)
    for layer, head in [(0, 0), (0, 2), (1, 1)]:
        out = impl.ov_copying_score(model, layer, head)
        assert isinstance(out, float), f"return a Python float (.item()), got {type(out).__name__}"
        expected = full_ov_score(model, layer, head)
        if abs(out - 1.0) < 1e-4 and abs(expected - 1.0) > 1e-2:
            pytest.fail("Got exactly 1: use eigenvalues (complex, any sign), not singular values, and divide by "
                        "the sum of their absolute values |lambda|.")
        assert abs(out - expected) < 1e-3, (
            f"head {layer}.{head}: got {out:.4f}, expected {expected:.4f}. The matrix is W_E W_V W_O W_U "
            "([d_vocab, d_vocab], ov_circuit(model, layer, head)); score = Re(sum lambda) / sum |lambda|.")


@pytest.mark.exercise("ov_copying_score", points=1)
def test_ov_score_extremes(impl):
    model = tiny_model(n_layers=1, n_heads=2, d_vocab=20, d_model=16, d_head=4)
    with torch.no_grad():
        model.unembed.W_U.copy_(model.embed.W_E.T)
        model.blocks[0].attn.W_O[0] = model.blocks[0].attn.W_V[0].T  # OV = W_E P P^T W_E^T: no negative eigenvalue
        model.blocks[0].attn.W_O[1] = -model.blocks[0].attn.W_V[1].T
    copy_score = impl.ov_copying_score(model, 0, 0)
    assert abs(copy_score - 1.0) < 1e-4, \
        f"a positive semi-definite OV circuit copies perfectly: score 1, got {copy_score}"
    anti = impl.ov_copying_score(model, 0, 1)
    assert abs(anti + 1.0) < 1e-4, f"its negative suppresses every token it attends to: score -1, got {anti}"
    with torch.no_grad():
        model.blocks[0].attn.W_O[0] = 0.0
    zero = impl.ov_copying_score(model, 0, 0)
    assert isinstance(zero, float) and zero == 0.0, f"a head with W_O = 0 should score 0 (not NaN), got {zero}"


@pytest.mark.exercise("ov_copying_score", points=1)
def test_ov_score_on_the_lite_model(impl, lite2):
    for layer in range(lite2.cfg.n_layers):
        for head in range(lite2.cfg.n_heads):
            # nonzero eigenvalues of AB are those of BA: here the d_head x d_head product (W_O W_U)(W_E W_V)
            small = (lite2.W_O[layer, head].double() @ lite2.W_U.double()) @ (
                lite2.W_E.double() @ lite2.W_V[layer, head].double())
            eig = torch.linalg.eigvals(small)
            expected = (eig.sum().real / eig.abs().sum()).item()
            out = impl.ov_copying_score(lite2, layer, head)
            assert abs(out - expected) < 1e-3, f"lite model head {layer}.{head}: got {out:.4f}, expected {expected:.4f}"
    for layer, head in [(lite2.cfg.n_layers, 0), (0, lite2.cfg.n_heads), (-1, 0), (0, -1)]:
        expect_value_error(impl.ov_copying_score, lite2, layer, head, what=f"ov_copying_score(model, {layer}, {head})",
                           expected=f"layer in 0 .. {lite2.cfg.n_layers - 1} and head in 0 .. {lite2.cfg.n_heads - 1}; "
                                    f"negative indices must not wrap around")
