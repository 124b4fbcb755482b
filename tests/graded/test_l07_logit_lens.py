"""Graded tests for lesson 07 (the logit lens).

Expected values come from a different route than the reference solution: the residual stream is rebuilt
block by block (``model.embed`` + ``model.pos_embed``, then ``model.blocks[l]``), LayerNorm and KL are
written out by hand, ranks are counted in loops, and the tuned lens is compared with a small trainer
written here. The models are tiny random HookedTransformers whose final LayerNorm has random weights, so
that forgetting it, applying it twice or with the wrong statistics all give different numbers.
"""

import math
from functools import cache

import pytest
import torch
import torch.nn as nn
from transformer_lens import HookedTransformer, HookedTransformerConfig

from mi_course.grading.asserts import assert_close, assert_shape, call_unmutated, expect_value_error
from mi_course.grading.judge import drive

LESSON = "l07_logit_lens"

TEXTS = ["the cat sat on the mat .", "a dog ran to the park and the cat ran home .",
         "Mary gave the book to John .", "the old bridge is over the river ."]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tiny_model(normalization_type="LN", n_layers=3, d_vocab=23, seed=0, tokenizer=None) -> HookedTransformer:
    cfg = HookedTransformerConfig(n_layers=n_layers, d_model=16, n_heads=2, d_head=8, d_mlp=32, act_fn="gelu",
                                  normalization_type=normalization_type, n_ctx=24, d_vocab=d_vocab, seed=seed)
    model = HookedTransformer(cfg, tokenizer=tokenizer) if tokenizer is not None else HookedTransformer(cfg)
    g = gen(seed + 100)
    with torch.no_grad():
        if normalization_type == "LN":  # random final LayerNorm weights: LN(LN(x)) != LN(x), w and b matter
            model.ln_final.w.copy_(1 + 0.5 * torch.randn(cfg.d_model, generator=g))
            model.ln_final.b.copy_(0.5 * torch.randn(cfg.d_model, generator=g))
        for l, block in enumerate(model.blocks):  # residual norms that differ from layer to layer
            block.mlp.W_out.mul_(2.0 + l)
        model.b_U.copy_(0.3 * torch.randn(d_vocab, generator=g))
    return model.eval()


@pytest.fixture(scope="module")
def ln_model():
    return tiny_model("LN", seed=1)


@pytest.fixture(scope="module")
def plain_model():
    return tiny_model(None, n_layers=2, seed=2)


@cache
def text_tokenizer():
    """The tokenizer trained on TEXTS (deterministic, so the judge and a subject train the same one)."""
    from mi_course.organisms.tokenizer import train_tokenizer

    return train_tokenizer(TEXTS)


@pytest.fixture(scope="module")
def text_model():
    tok = text_tokenizer()
    return tiny_model("LN", n_layers=2, d_vocab=len(tok), seed=3, tokenizer=tok)


def random_tokens(model, batch=2, pos=9, seed=0, avoid_bos=True):
    low = 4 if avoid_bos else 0  # ids 0-3 are the special tokens of the course's tokenizer
    return torch.randint(low, model.cfg.d_vocab, (batch, pos), generator=gen(seed))


# ---------------------------------------------------------------- independent references


def ref_residuals(model, tokens):
    """[L + 1, batch, pos, d_model], rebuilt block by block without hooks."""
    with torch.no_grad():
        x = model.embed(tokens) + model.pos_embed(tokens)
        rows = [x]
        for block in model.blocks:
            x = block(x)
            rows.append(x)
    return torch.stack(rows)


def ref_layernorm(model, x):
    """LayerNorm written out: each vector centred and divided by its own scale, then weight and bias."""
    if model.cfg.normalization_type is None:
        return x
    x = x - x.mean(dim=-1, keepdim=True)
    scale = (x.pow(2).mean(dim=-1, keepdim=True) + model.cfg.eps).sqrt()
    return x / scale * model.ln_final.w + model.ln_final.b


def unembed(model, x):
    return x @ model.W_U + model.b_U


def ref_lens(model, tokens):
    with torch.no_grad():
        return unembed(model, ref_layernorm(model, ref_residuals(model, tokens)))


def ref_kl(logits):
    """KL(final || layer) with explicit sums, element by element of the [L + 1, batch, pos] grid."""
    logp = logits.double().log_softmax(dim=-1)
    out = torch.zeros(logits.shape[:-1], dtype=torch.float64)
    for l in range(logits.shape[0]):
        for b in range(logits.shape[1]):
            for p in range(logits.shape[2]):
                final, layer = logp[-1, b, p], logp[l, b, p]
                out[l, b, p] = sum(math.exp(f) * (f - q) for f, q in zip(final.tolist(), layer.tolist()))
    return out.float()


def ref_rank(logits, tokens):
    out = torch.zeros(logits.shape[0], logits.shape[1], logits.shape[2] - 1, dtype=torch.long)
    for l in range(logits.shape[0]):
        for b in range(logits.shape[1]):
            for p in range(logits.shape[2] - 1):
                row = logits[l, b, p].tolist()
                target = row[int(tokens[b, p + 1])]
                out[l, b, p] = sum(v > target for v in row)
    return out


def hooks_left(model) -> list[str]:
    return [name for name, hp in model.hook_dict.items() if len(hp._forward_hooks) or len(hp._backward_hooks)]


def same_values(a, b, atol=1e-4):
    return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(a.detach().float(), b, atol=atol)


# ---------------------------------------------------------------- accumulated_residuals


@pytest.mark.exercise("accumulated_residuals", points=2)
def test_accumulated_residuals_rows(impl, ln_model):
    tokens = random_tokens(ln_model)
    _, cache = ln_model.run_with_cache(tokens)
    got = impl.accumulated_residuals(cache)
    expected = ref_residuals(ln_model, tokens)
    L = ln_model.cfg.n_layers
    if isinstance(got, torch.Tensor) and got.shape[0] == L:
        pytest.fail(f"You returned {L} rows for a {L}-layer model; there are {L + 1}: row 0 is the residual after "
                    f"the embeddings (blocks.0.hook_resid_pre), then one row after every block (hook_resid_post).")
    if isinstance(got, torch.Tensor) and got.shape[0] == 2 * L + 1:
        pytest.fail("You returned 2 n_layers + 1 rows: leave out hook_resid_mid, only the residual between blocks.")
    got = assert_shape(got, tuple(expected.shape), "accumulated_residuals(cache) ([n_layers + 1, batch, pos, d_model])")
    if same_values(got[0], cache["hook_embed"]):
        pytest.fail("Row 0 is only the token embedding: the residual after the embeddings also holds the "
                    "positional embedding. Use blocks.0.hook_resid_pre.")
    if same_values(got[1:], expected[:-1]):
        pytest.fail("Rows are shifted by one: row l (l >= 1) is the residual AFTER block l - 1, "
                    "blocks.{l-1}.hook_resid_post, and row 0 the embeddings.")
    if same_values(got, ref_layernorm(ln_model, expected)):
        pytest.fail("The rows went through ln_final: accumulated_residuals returns the raw residual stream.")
    assert_close(got, expected, "accumulated_residuals(cache)", atol=1e-4,
                 hint="Row 0 = blocks.0.hook_resid_pre, row l = blocks.{l-1}.hook_resid_post, stacked on a new dim 0.")


@pytest.mark.exercise("accumulated_residuals", points=1)
def test_accumulated_residuals_any_depth(impl):
    """A one-layer and a four-layer model: the number of rows comes from the model, not a constant."""
    for n_layers in (1, 4):
        model = tiny_model("LN", n_layers=n_layers, seed=10 + n_layers)
        tokens = random_tokens(model, batch=3, pos=5, seed=n_layers)
        _, cache = model.run_with_cache(tokens)
        got = assert_shape(impl.accumulated_residuals(cache), (n_layers + 1, 3, 5, 16),
                           f"accumulated_residuals for a {n_layers}-layer model")
        assert_close(got, ref_residuals(model, tokens), f"accumulated_residuals for a {n_layers}-layer model",
                     atol=1e-4, hint="Read the number of layers from the cache's model (cache.model.cfg.n_layers).")


# ---------------------------------------------------------------- logit_lens


@pytest.mark.exercise("logit_lens", points=3)
def test_logit_lens_decodes_with_final_layernorm(impl, ln_model):
    tokens = random_tokens(ln_model, seed=1)
    got = call_unmutated(impl.logit_lens, ln_model, tokens)
    resid = ref_residuals(ln_model, tokens)
    expected = ref_lens(ln_model, tokens)
    got = assert_shape(got, tuple(expected.shape), "logit_lens(model, tokens) ([n_layers + 1, batch, pos, d_vocab])")
    got = got.detach()
    with torch.no_grad():
        centred = resid - resid.mean(-1, keepdim=True)
        final_scale = (centred[-1].pow(2).mean(-1, keepdim=True) + ln_model.cfg.eps).sqrt()
        mistakes = {
            "the final LayerNorm is missing: decode with model.unembed(model.ln_final(resid))":
                unembed(ln_model, resid),
            "every layer was normalized with the FINAL layer's scale (e.g. cache['ln_final.hook_scale'], or "
            "cache.apply_ln_to_stack, which reuses the cached scale): ln_final must recompute each vector's own "
            "mean and scale, so call model.ln_final on the stack":
                unembed(ln_model, centred / final_scale * ln_model.ln_final.w + ln_model.ln_final.b),
            "every layer was divided by the FINAL layer's cached scale and the LayerNorm's weight and bias were "
            "dropped (what cache.apply_ln_to_stack does: it is meant for folded models and direct logit "
            "attribution): call model.ln_final on the stack, which recomputes each vector's own scale":
                unembed(ln_model, centred / final_scale),
            "ln_final was applied twice: normalize the raw residual once, then unembed":
                unembed(ln_model, ref_layernorm(ln_model, ref_layernorm(ln_model, resid))),
            "the LayerNorm's weight and bias are missing: use model.ln_final itself, not a bare normalization":
                unembed(ln_model, centred / (centred.pow(2).mean(-1, keepdim=True) + ln_model.cfg.eps).sqrt()),
            "the unembedding bias b_U is missing: use model.unembed (x @ W_U + b_U)":
                ref_layernorm(ln_model, resid) @ ln_model.W_U,
        }
    for mistake, wrong in mistakes.items():
        if same_values(got, wrong, atol=1e-3) and not same_values(got, expected, atol=1e-3):
            pytest.fail(f"logit_lens is wrong: {mistake}.")
    assert_close(got, expected, "logit_lens(model, tokens)", atol=1e-3,
                 hint="Row l = unembed(ln_final(residual after l blocks)); row 0 decodes blocks.0.hook_resid_pre.")


@pytest.mark.exercise("logit_lens", points=1)
def test_logit_lens_ends_at_the_model_and_starts_at_the_embeddings(impl, ln_model):
    tokens = random_tokens(ln_model, batch=3, pos=6, seed=2)
    got = impl.logit_lens(ln_model, tokens)
    got = assert_shape(got, (ln_model.cfg.n_layers + 1, 3, 6, ln_model.cfg.d_vocab), "logit_lens(model, tokens)")
    with torch.no_grad():
        logits = ln_model(tokens)
    if same_values(got[-2], logits, atol=1e-3):
        pytest.fail("The second-to-last row equals the model's logits: the rows are off by one. Row 0 must be the "
                    "embeddings (blocks.0.hook_resid_pre) and the last row the output of the last block.")
    assert_close(got[-1], logits, "the last row of the logit lens (it should equal model(tokens))", atol=1e-3,
                 hint="The last row decodes the residual after the last block, which is exactly what the model does.")
    with torch.no_grad():
        embeddings = ln_model.embed(tokens) + ln_model.pos_embed(tokens)
        row0 = unembed(ln_model, ref_layernorm(ln_model, embeddings))
    assert_close(got[0], row0, "row 0 of the logit lens (the decoded embeddings)", atol=1e-3,
                 hint="Row 0 decodes the token plus positional embedding, before any block.")


@pytest.mark.exercise("logit_lens", points=1)
def test_logit_lens_without_layernorm(impl, plain_model):
    tokens = random_tokens(plain_model, seed=3)
    try:
        got = impl.logit_lens(plain_model, tokens)
    except AttributeError as err:
        pytest.fail(f"This model has no final LayerNorm (cfg.normalization_type is None, so there is no "
                    f"model.ln_final): apply ln_final only where the model has one ({err}).")
    assert_close(got, ref_lens(plain_model, tokens), "logit_lens on a model without LayerNorm", atol=1e-3,
                 hint="Without a final LayerNorm the model unembeds the residual directly; so does the lens.")


def _logit_lens_trace(impl, model, tokens):
    """Driver: the model's logits before and after a logit_lens call, the lens, and the hooks left attached."""
    with torch.no_grad():
        before = model(tokens)
    got = impl.logit_lens(model, tokens)
    left = hooks_left(model)
    with torch.no_grad():
        after = model(tokens)
    return {"before": before, "got": got, "left": left, "after": after}


@pytest.mark.exercise("logit_lens", points=1)
def test_logit_lens_leaves_no_trace(impl, ln_model):
    """Tokens that do not start with BOS are used as given, and no hook stays attached."""
    tokens = random_tokens(ln_model, batch=1, pos=7, seed=4)
    trace = drive(impl, _logit_lens_trace, ln_model, tokens)
    before, got = trace["before"], trace["got"]
    if isinstance(got, torch.Tensor) and got.dim() == 4 and got.shape[2] == 8:
        pytest.fail("The lens has one position more than tokens: do not add a BOS token; use tokens as given.")
    assert_close(got, ref_lens(ln_model, tokens), "logit_lens on tokens without BOS", atol=1e-3)
    left = trace["left"]
    assert not left, (f"hooks are still attached after logit_lens ({left[:3]}): use run_with_cache, or remove "
                      f"your hooks (model.reset_hooks(), or the model.hooks(...) context manager)")
    assert torch.equal(trace["after"], before), "the model computes something else after logit_lens"


# ---------------------------------------------------------------- top_tokens_table

COLUMNS = ["layer", "pos", "input", "target", "rank", "token", "token_id", "logit", "correct"]


def planted_tokens(model, pos=10, seed=5):
    """A sequence (not starting with BOS) where at positions 1, 3, 4, 7 the next token is the model's own top
    guess, so the last layer is correct there; elsewhere the next token is random."""
    g = gen(seed)
    tokens = [int(torch.randint(4, model.cfg.d_vocab, (1,), generator=g))]
    for p in range(pos - 1):
        if p in (1, 3, 4, 7):
            with torch.no_grad():
                tokens.append(int(model(torch.tensor([tokens]))[0, -1].argmax()))
        else:
            tokens.append(int(torch.randint(4, model.cfg.d_vocab, (1,), generator=g)))
    return torch.tensor(tokens)


def _top_tokens_table(impl, model, tokens, k):
    """Driver: top_tokens_table on ``model`` with the test's tokenizer (a tokenizer does not cross with a test
    model), a DataFrame returned as its columns (see ``as_frame``), anything else as it is."""
    import pandas as pd

    if model.tokenizer is None:
        model.set_tokenizer(text_tokenizer())
    table = impl.top_tokens_table(model, tokens, k)
    if not isinstance(table, pd.DataFrame):
        return {"value": table}
    return {"columns": {c if type(c) in (str, int) else str(c): [v.item() if type(v).__module__ == "numpy" else v
                                                                 for v in table[c].tolist()] for c in table.columns}}


def as_frame(got):
    """The learner's table, rebuilt from what ``_top_tokens_table`` returned."""
    import pandas as pd

    return pd.DataFrame(got["columns"]) if "columns" in got else got["value"]


@pytest.mark.exercise("top_tokens_table", points=2)
def test_top_tokens_table_contents(impl, text_model):
    import pandas as pd

    tokens, k = planted_tokens(text_model), 3
    table = as_frame(call_unmutated(drive, impl, _top_tokens_table, text_model, tokens, k))
    assert isinstance(table, pd.DataFrame), \
        f"top_tokens_table should return a pandas DataFrame, got {type(table).__name__}"
    missing = [c for c in COLUMNS if c not in table.columns]
    assert not missing, f"the table lacks the columns {missing} (expected {COLUMNS})"
    L, n_pos = text_model.cfg.n_layers, len(tokens)
    if len(table) == (L + 1) * (n_pos + 1) * k:
        pytest.fail("The table has one position more than tokens: do not add a BOS token; use tokens as given.")
    assert len(table) == (L + 1) * n_pos * k, \
        f"the table should have (n_layers + 1) * pos * k = {(L + 1) * n_pos * k} rows, got {len(table)}"
    keys = list(zip(table["layer"].tolist(), table["pos"].tolist(), table["rank"].tolist()))
    assert keys == [(l, p, r) for l in range(L + 1) for p in range(n_pos) for r in range(k)], \
        "rows should be sorted by layer (0 .. n_layers), then position, then rank (0 .. k - 1)"
    words = text_model.to_str_tokens(tokens)
    if table["input"].tolist()[:k] == ["<bos>"] * k:
        pytest.fail("The table starts with <bos> but these tokens do not: use the tokens as given (no BOS added).")
    assert table["input"].tolist() == [words[p] for _ in range(L + 1) for p in range(n_pos) for _ in range(k)], \
        "the input column should hold the token at each position, as model.to_str_tokens(tokens) gives it"
    targets = [words[p + 1] if p + 1 < n_pos else None for _ in range(L + 1) for p in range(n_pos) for _ in range(k)]
    got_targets = [t if isinstance(t, str) else None for t in table["target"].tolist()]
    if got_targets == [words[p] for _ in range(L + 1) for p in range(n_pos) for _ in range(k)]:
        pytest.fail("The target column holds the token at pos; the target is the NEXT token, tokens[pos + 1].")
    assert got_targets == targets, \
        "the target column should hold tokens[pos + 1] as a string (None at the last position)"

    lens = ref_lens(text_model, tokens[None])[:, 0]
    values, ids = lens.topk(k, dim=-1)
    got_ids = torch.tensor(table["token_id"].tolist()).view(L + 1, n_pos, k)
    if torch.equal(got_ids, lens.topk(k, dim=-1, largest=False).indices):
        pytest.fail("These are the k LEAST likely tokens: take the largest logits (topk, largest=True).")
    assert torch.equal(got_ids, ids), "token_id should be the k tokens with the largest logit-lens logits, best first"
    got_logits = torch.tensor(table["logit"].tolist(), dtype=torch.float32).view(L + 1, n_pos, k)
    assert_close(got_logits, values, "the logit column", atol=1e-3,
                 hint="Use the logit lens's logits (after ln_final), not probabilities.")
    assert table["token"].tolist() == text_model.to_str_tokens(ids.flatten()), \
        "the token column should be model.to_str_tokens of token_id"


@pytest.mark.exercise("top_tokens_table", points=1)
def test_top_tokens_table_marks_correct_guesses(impl, text_model):
    tokens = planted_tokens(text_model)
    table = as_frame(drive(impl, _top_tokens_table, text_model, tokens[None], 1))  # [1, pos] is accepted too
    L, n_pos = text_model.cfg.n_layers, len(tokens)
    assert len(table) == (L + 1) * n_pos, \
        (f"with k=1 the table should have (n_layers + 1) * pos = {(L + 1) * n_pos} rows (tokens used as given), "
         f"got {len(table)}")
    correct = torch.tensor([bool(c) for c in table["correct"].tolist()]).view(L + 1, n_pos)
    top = ref_lens(text_model, tokens[None])[:, 0].argmax(-1)  # [L + 1, pos]
    expected = torch.zeros(L + 1, n_pos, dtype=torch.bool)
    expected[:, :-1] = top[:, :-1] == tokens[1:]
    if torch.equal(correct, top == tokens):
        pytest.fail("A guess at position p is correct when it equals the NEXT token, tokens[p + 1], not tokens[p].")
    assert correct[-1, [1, 3, 4, 7]].all(), \
        "the last layer's top guess is the next token at positions 1, 3, 4 and 7, but correct is False there"
    assert not correct[:, -1].any(), "at the last position there is no next token: correct must be False"
    assert torch.equal(correct, expected), "correct should be True exactly where token_id == tokens[pos + 1]"
    expect_value_error(drive, impl, _top_tokens_table, text_model, torch.stack([tokens, tokens]), 1,
                       what="top_tokens_table on a [2, pos] tensor",
                       expected="it takes one sequence, [pos] or [1, pos]")
    V = text_model.cfg.d_vocab
    for k in (0, V + 1):
        expect_value_error(drive, impl, _top_tokens_table, text_model, tokens, k,
                           what=f"top_tokens_table(model, tokens, k={k})",
                           expected=f"k must be in 1 .. d_vocab = {V}")
    short = tokens[:4]
    try:
        # every token is a guess at every position
        everything = as_frame(drive(impl, _top_tokens_table, text_model, short, V))
    except ValueError as err:
        pytest.fail(f"k = d_vocab = {V} is allowed (1 <= k <= d_vocab), but it raised: {err}")
    assert len(everything) == (L + 1) * len(short) * V, \
        f"with k = d_vocab the table should have (n_layers + 1) * pos * d_vocab = {(L + 1) * len(short) * V} rows"
    last = everything[everything["pos"] == len(short) - 1]
    assert not last["correct"].astype(bool).any(), \
        ("at the last position there is no next token, so no guess is correct (did the next token wrap around to "
         "tokens[0]?)")


# ---------------------------------------------------------------- kl_to_final


@pytest.mark.exercise("kl_to_final", points=2)
def test_kl_to_final_values(impl):
    logits = torch.randn(3, 2, 4, 7, generator=gen(6)) * 2  # every dimension has its own size
    got = call_unmutated(impl.kl_to_final, logits)
    expected = ref_kl(logits)
    got = assert_shape(got, (3, 2, 4), "kl_to_final(lens_logits) ([n_layers + 1, batch, pos])")
    logp = logits.log_softmax(-1)
    mistakes = {
        "the KL direction is swapped: this is KL(layer || final). Weight by the FINAL distribution, "
        "sum p_final * (log p_final - log p_layer)": (logp.exp() * (logp - logp[-1])).sum(-1),
        "it is averaged over the vocabulary: KL sums over tokens": expected / 7,
        "the softmax runs over the wrong dimension: normalize over the vocabulary, dim=-1":
            (logits.log_softmax(0)[-1].exp() * (logits.log_softmax(0)[-1] - logits.log_softmax(0))).sum(-1),
        "the softmax runs over positions (dim=-2), not the vocabulary (dim=-1)":
            (logits.log_softmax(-2)[-1].exp() * (logits.log_softmax(-2)[-1] - logits.log_softmax(-2))).sum(-1),
        "it uses raw logits instead of log-probabilities: apply log_softmax first":
            (logits[-1].softmax(-1) * (logits[-1] - logits)).sum(-1),
        "every layer is compared with row 0 (the embeddings): the final distribution is the LAST row":
            (logp[0].exp() * (logp[0] - logp)).sum(-1),
        "it is in bits (log base 2): use natural logarithms (nats), as log_softmax gives": expected / math.log(2),
    }
    for mistake, wrong in mistakes.items():
        if same_values(got, wrong, atol=1e-4) and not same_values(got, expected, atol=1e-4):
            pytest.fail(f"kl_to_final is wrong: {mistake}.")
    assert_close(got, expected, "kl_to_final on random logits", atol=1e-4,
                 hint="KL(final || layer) = sum_v p_final(v) (log p_final(v) - log p_layer(v)), softmax over dim -1.")


@pytest.mark.exercise("kl_to_final", points=1)
def test_kl_to_final_properties(impl):
    logits = torch.randn(4, 3, 5, 11, generator=gen(7)) * 3
    got = assert_shape(impl.kl_to_final(logits), (4, 3, 5), "kl_to_final(lens_logits)")
    assert (got[-1].abs() < 1e-5).all(), "the last row compares the final layer with itself and should be 0"
    assert (got > -1e-5).all(), "KL divergence is never negative; check the order of the two log-probabilities"
    shifted = logits + torch.randn(4, 3, 5, 1, generator=gen(8)) * 10  # one constant per layer and position
    assert_close(impl.kl_to_final(shifted), got.detach(),
                 "kl_to_final after adding a constant to every logit of a (layer, position)", atol=1e-3,
                 hint="Logits are defined up to a constant per distribution, and softmax over the vocabulary (dim -1) "
                      "removes it; a softmax over another dimension does not.")
    same = torch.randn(1, 3, 5, 11, generator=gen(9)).expand(4, 3, 5, 11)
    assert (impl.kl_to_final(same).abs() < 1e-5).all(), "identical rows should give KL 0 everywhere"


@pytest.mark.exercise("kl_to_final", points=1)
def test_kl_to_final_large_logits(impl):
    logits = torch.randn(3, 2, 4, 9, generator=gen(10)) * 60  # logit gaps of hundreds: probabilities underflow
    got = impl.kl_to_final(logits)
    got = assert_shape(got, (3, 2, 4), "kl_to_final on large logits")
    if not torch.isfinite(got).all():
        pytest.fail("Large logits give NaN or inf: probabilities underflow to 0 and log(0) = -inf. Use "
                    "log_softmax for the log-probabilities instead of softmax(...).log().")
    assert_close(got, ref_kl(logits), "kl_to_final on large logits", atol=1e-2, rtol=1e-3)


# ---------------------------------------------------------------- correct_token_rank


@pytest.mark.exercise("correct_token_rank", points=2)
def test_correct_token_rank_hand_made(impl):
    # 2 layers, 1 sequence, 4 positions, vocabulary of 5; tokens 0 2 4 1
    tokens = torch.tensor([[0, 2, 4, 1]])
    logits = torch.tensor([[
        [[0.0, 1.0, 5.0, 2.0, 3.0],   # pos 0 predicts token 2: top -> rank 0
         [4.0, 3.0, 2.0, 1.0, 0.0],   # pos 1 predicts token 4: lowest -> rank 4
         [1.0, 9.0, 3.0, 2.0, 0.5],   # pos 2 predicts token 1: top -> rank 0
         [9.0, 0.0, 0.0, 0.0, 0.0]],  # last position: nothing to predict
    ], [
        [[2.0, 0.0, 1.0, 3.0, 4.0],   # token 2: 3 larger -> rank 3
         [0.0, 1.0, 2.0, 3.0, 2.5],   # token 4: one larger -> rank 1
         [5.0, 4.0, 3.0, 2.0, 1.0],   # token 1: one larger -> rank 1
         [0.0, 0.0, 0.0, 0.0, 9.0]],
    ]])  # [2, 1, 4, 5]
    expected = torch.tensor([[[0, 4, 0]], [[3, 1, 1]]])
    got = call_unmutated(impl.correct_token_rank, logits, tokens)
    if isinstance(got, torch.Tensor) and got.shape == (2, 1, 4):
        pytest.fail("You kept every position: position p predicts tokens[p + 1], so there are pos - 1 ranks "
                    "(the last position has nothing to predict).")
    got = assert_shape(got, (2, 1, 3), "correct_token_rank(lens_logits, tokens) ([n_layers + 1, batch, pos - 1])")
    assert not got.is_floating_point(), f"ranks are integers, got dtype {got.dtype}"
    if torch.equal(got, expected + 1):
        pytest.fail("The ranks are one too large: count the tokens with a strictly larger logit, so the top guess "
                    "has rank 0.")
    if torch.equal(got, 4 - expected):
        pytest.fail("The ranks are counted from the bottom: rank 0 is the LARGEST logit.")
    if torch.equal(got, ref_rank(logits, torch.cat([tokens[:, :1], tokens[:, :-1]], dim=1))):
        pytest.fail("The ranks are for tokens[p], the token AT position p; position p predicts tokens[p + 1].")
    shifted_logits = torch.cat([logits[:, :, 1:], logits[:, :, :1]], dim=2)
    if torch.equal(got, ref_rank(shifted_logits, tokens)):
        pytest.fail("The logits and targets are misaligned: compare lens_logits[:, :, p] with tokens[:, p + 1] "
                    "(drop the LAST position of the logits and the FIRST of the tokens).")
    assert torch.equal(got.long(), expected), f"ranks {got.tolist()}, expected {expected.tolist()}"


@pytest.mark.exercise("correct_token_rank", points=1)
def test_correct_token_rank_matches_loop(impl):
    logits = torch.randn(3, 2, 6, 13, generator=gen(11))
    tokens = torch.randint(0, 13, (2, 6), generator=gen(12))
    got = call_unmutated(impl.correct_token_rank, logits, tokens)
    got = assert_shape(got, (3, 2, 5), "correct_token_rank on random logits")
    expected = ref_rank(logits, tokens)
    assert torch.equal(got.long(), expected), \
        ("ranks differ from a count of strictly larger logits; argsort gives token ids, not ranks "
         "(rank = (logits > logits of the target).sum(-1))")
    tied = torch.randint(0, 4, (3, 2, 6, 13), generator=gen(13)).float()  # few distinct values: many ties
    got = assert_shape(impl.correct_token_rank(tied, tokens), (3, 2, 5), "correct_token_rank on tied logits")
    assert torch.equal(got.long(), ref_rank(tied, tokens)), \
        ("with tied logits the ranks are wrong: count only the tokens with a strictly larger logit, so a token "
         "tied with the target does not push it down (ties share the better rank, whatever their ids)")


# ---------------------------------------------------------------- train_tuned_lens


def ref_tuned_kl(model, translators, tokens):
    """Per-layer mean KL(final || tuned lens), decoded here by hand."""
    resid = ref_residuals(model, tokens)
    with torch.no_grad():
        rows = torch.stack([translators[l](resid[l]) for l in range(len(translators))])
        return ref_kl_fast(unembed(model, ref_layernorm(model, rows))).mean(dim=(1, 2))


def ref_kl_fast(logits):
    logp = logits.log_softmax(-1)
    return (logp[-1].exp() * (logp[-1] - logp)).sum(-1)


def ref_train(model, tokens, steps, lr):
    """A tuned lens trained here: identity start, Adam on rows 0 .. L - 1, loss = mean over those rows of the
    mean KL(final || unembed(LN(A h + b))) over positions, the final distribution fixed."""
    resid = ref_residuals(model, tokens)
    L, d = model.cfg.n_layers, model.cfg.d_model
    weights = [torch.eye(d).requires_grad_(True) for _ in range(L)]
    biases = [torch.zeros(d).requires_grad_(True) for _ in range(L)]
    with torch.no_grad():
        target = unembed(model, ref_layernorm(model, resid[-1])).log_softmax(-1)
    optimizer = torch.optim.Adam(weights + biases, lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = 0.0
        for l in range(L):
            logq = unembed(model, ref_layernorm(model, resid[l] @ weights[l].T + biases[l])).log_softmax(-1)
            loss = loss + (target.exp() * (target - logq)).sum(-1).mean() / L
        loss.backward()
        optimizer.step()
    model.zero_grad(set_to_none=True)  # the model's parameters were frozen only by not being optimized
    out = nn.ModuleList(nn.Linear(d, d) for _ in range(L + 1))
    with torch.no_grad():
        for l, t in enumerate(out):
            t.weight.copy_(weights[l] if l < L else torch.eye(d))
            t.bias.copy_(biases[l] if l < L else torch.zeros(d))
    return out


def _tuned_lens(impl, model, tokens, **kwargs):
    """Driver: train_tuned_lens, its translators returned as data (see ``as_translators``), with the model's
    weights and the hooks left attached after the call."""
    translators = impl.train_tuned_lens(model, tokens, **kwargs)
    if isinstance(translators, (nn.ModuleList, list, tuple)):
        translators = {"items": [{"weight": t.weight.detach().cpu().clone(),
                                  "bias": None if t.bias is None else t.bias.detach().cpu().clone()}
                                 if isinstance(t, nn.Linear) else {"value": t} for t in translators]}
    else:
        translators = {"value": translators}
    return {"translators": translators, "state": {k: v.clone() for k, v in model.state_dict().items()},
            "left": hooks_left(model)}


def as_translators(got):
    """The learner's translators, rebuilt from what ``_tuned_lens`` returned: a list of nn.Linear (anything
    that was not an nn.Linear, or not a list of them, stays as it came back)."""
    data = got["translators"]
    if "items" not in data:
        return data["value"]
    out = []
    for item in data["items"]:
        if "weight" not in item:
            out.append(item["value"])
            continue
        weight, bias = item["weight"], item["bias"]
        linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, dtype=weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(weight)
            if bias is not None:
                linear.bias.copy_(bias)
        out.append(linear)
    return out


def check_translators(translators, model):
    n, d = model.cfg.n_layers + 1, model.cfg.d_model
    assert isinstance(translators, (nn.ModuleList, list, tuple)), \
        f"train_tuned_lens should return an nn.ModuleList of translators, got {type(translators).__name__}"
    assert len(translators) == n, \
        f"expected n_layers + 1 = {n} translators (one per row of the lens), got {len(translators)}"
    for i, t in enumerate(translators):
        assert isinstance(t, nn.Linear) and t.in_features == d and t.out_features == d and t.bias is not None, \
            f"translator {i} should be an nn.Linear({d}, {d}) with a bias"


@pytest.mark.exercise("train_tuned_lens", points=1)
def test_tuned_lens_starts_at_identity(impl, ln_model):
    tokens = random_tokens(ln_model, batch=4, pos=8, seed=13)
    translators = as_translators(drive(impl, _tuned_lens, ln_model, tokens, steps=0))
    check_translators(translators, ln_model)
    eye = torch.eye(ln_model.cfg.d_model)
    for i, t in enumerate(translators):
        assert torch.allclose(t.weight.detach().cpu(), eye) and torch.all(t.bias.detach().cpu() == 0), \
            (f"with steps=0, translator {i} should be the identity (weight I, bias 0): "
             "an untrained tuned lens is the logit lens")


@pytest.mark.exercise("train_tuned_lens", points=1)
def test_tuned_lens_one_adam_step(impl, ln_model):
    tokens = random_tokens(ln_model, batch=4, pos=8, seed=14)
    before = {k: v.clone() for k, v in ln_model.state_dict().items()}
    got = drive(impl, _tuned_lens, ln_model, tokens, steps=1, lr=0.01)
    translators = as_translators(got)
    check_translators(translators, ln_model)
    eye = torch.eye(ln_model.cfg.d_model)
    step = max((t.weight.detach().cpu() - eye).abs().max().item() for t in translators[:-1])
    # Adam's first step moves every parameter with a nonzero gradient by almost exactly lr
    assert abs(step - 0.01) < 1e-3, (f"one step with lr=0.01 moved the translators' weights by up to {step:.4f}; "
                                     f"Adam's first step moves each weight by about lr: use "
                                     f"torch.optim.Adam(translator parameters, lr=lr)")
    # Adam's first step is about lr * sign(gradient): the signs show which loss was minimized
    reference = ref_train(ln_model, tokens, steps=1, lr=0.01)
    agree = torch.cat([((t.weight.detach().cpu() - r.weight).abs() < 2e-3).flatten()
                       for t, r in zip(translators[:-1], reference[:-1])]).float().mean().item()
    assert agree > 0.97, (f"after one Adam step, only {agree:.0%} of the translators' weights moved the way the "
                          f"gradient of the right loss says. Check the loss: KL(final || translated), i.e. "
                          f"sum p_final * (log p_final - log p_translated) with the FINAL distribution as the "
                          f"fixed weight (not KL(translated || final)), and the translated residual decoded "
                          f"through ln_final and the unembedding, like the logit lens.")
    last = translators[-1]
    assert torch.allclose(last.weight.detach().cpu(), eye) and torch.all(last.bias.detach().cpu() == 0), \
        "the last translator should stay the identity: the final residual needs no translation"
    changed = [k for k, v in got["state"].items() if not torch.equal(v, before[k])]
    assert not changed, f"training changed the model's own weights ({changed[:3]}): train only the translators"
    left = got["left"]
    assert not left, f"hooks are still attached after train_tuned_lens ({left[:3]})"


@pytest.mark.exercise("train_tuned_lens", points=2)
def test_tuned_lens_beats_logit_lens(impl, ln_model):
    tokens = random_tokens(ln_model, batch=8, pos=12, seed=15)
    L, d = ln_model.cfg.n_layers, ln_model.cfg.d_model
    identity = nn.ModuleList(nn.Linear(d, d) for _ in range(L + 1))
    with torch.no_grad():
        for t in identity:
            t.weight.copy_(torch.eye(d))
            t.bias.zero_()
    logit_kl = ref_tuned_kl(ln_model, identity, tokens)
    translators = as_translators(drive(impl, _tuned_lens, ln_model, tokens, steps=60, lr=0.03))
    check_translators(translators, ln_model)
    tuned_kl = ref_tuned_kl(ln_model, [t.cpu() for t in translators], tokens)
    report = (f"mean KL(final || layer) per layer: logit lens {[round(v, 3) for v in logit_kl.tolist()]}, "
              f"your tuned lens {[round(v, 3) for v in tuned_kl.tolist()]}")
    assert torch.isfinite(tuned_kl).all(), f"the tuned lens gives NaN or inf. {report}"
    reference_kl = ref_tuned_kl(ln_model, ref_train(ln_model, tokens, steps=60, lr=0.03), tokens)
    report += f", a reference tuned lens {[round(v, 3) for v in reference_kl.tolist()]}"
    assert (tuned_kl[:-1] < 1.15 * reference_kl[:-1] + 0.01).all() and (tuned_kl[:-1] < 0.5 * logit_kl[:-1]).all(), \
        (f"after 60 steps the tuned lens should get about as low as a reference (and at least halve the logit "
         f"lens's KL) at every layer. {report}. "
         f"Check that each translator's output goes through ln_final and the unembedding, that the loss is "
         f"KL(final || translated) with the model's final distribution as a fixed target, that every "
         f"translator but the last is given to one optimizer created before the loop, and that every step "
         f"clears the old gradients (optimizer.zero_grad()).")
    first = as_translators(drive(impl, _tuned_lens, ln_model, tokens, steps=5, lr=0.03))
    again = as_translators(drive(impl, _tuned_lens, ln_model, tokens, steps=5, lr=0.03))
    assert all(torch.allclose(a.weight, b.weight, atol=1e-5) for a, b in zip(first, again)), \
        "two runs on the same tokens gave different translators: training should be deterministic"
