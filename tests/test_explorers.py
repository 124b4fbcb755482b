"""The interactive explorers (mi_course.explorers), driven headless as a learner's mouse would: build one on a
shipped lite model, move a control, and check what the view holds against the model itself."""

import html
import sys
import types

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

import mi_course  # noqa: E402
from mi_course.explorers import attention_explorer, enable_colab_widgets, logit_lens_explorer, superposition_explorer  # noqa: E402
from mi_course.models.registry import lite_shipped  # noqa: E402
from solutions.l08_superposition import ToyModel, train_toy_model  # noqa: E402

TEXT = "Clara Thorne opened the old gate, and the dog of Clara Thorne ran in."
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def shown(explorer, mime):
    """Every output of that MIME type the explorer's Output widget holds now."""
    return [o["data"][mime] for o in explorer.output.outputs if mime in o["data"]]


def kl(p_logits, q_logits):
    """KL(p || q) over the last axis, written out here rather than taken from the lens module."""
    logp, logq = p_logits.log_softmax(-1), q_logits.log_softmax(-1)
    return (logp.exp() * (logp - logq)).sum(-1)


# ------------------------------------------------------------------------------------------------ logit lens


@pytest.fixture(scope="module")
def lm():
    if not lite_shipped("lm"):
        pytest.skip("the lite lm is not shipped")
    return mi_course.load_model("lm", mode="lite", device="cpu")


@pytest.fixture(scope="module")
def lm_run(lm):
    tokens = lm.to_tokens(TEXT)
    with torch.no_grad():
        logits, cache = lm.run_with_cache(tokens)
    return tokens, logits[0], cache


def test_lens_at_the_last_layer_is_the_model_itself(lm, lm_run):
    tokens, logits, _ = lm_run
    lens = logit_lens_explorer(lm, TEXT, k=3)
    assert lens.layer.value == lm.cfg.n_layers and lens.position.value == tokens.shape[1] - 1
    for pos in (1, 5, tokens.shape[1] - 1):
        lens.position.value = pos
        now = lens.current()
        top = now["top"]
        assert [r["token_id"] for r in top] == logits[pos].topk(3).indices.tolist(), \
            "the last layer's top guesses must be the model's own top logits"
        assert top[0]["prob"] == pytest.approx(logits[pos].softmax(-1).max().item(), abs=1e-5)
        assert now["kl"][-1] == pytest.approx(0.0, abs=1e-5) and now["kl_here"] == pytest.approx(0.0, abs=1e-5)
        assert len(now["kl"]) == lm.cfg.n_layers + 1
        assert now["input"] == lm.to_str_tokens(tokens[0])[pos]
        assert now["target"] == (None if pos == tokens.shape[1] - 1 else lm.to_str_tokens(tokens[0])[pos + 1])


def test_lens_layer_slider_decodes_that_layer(lm, lm_run):
    tokens, logits, cache = lm_run
    lens = logit_lens_explorer(lm, TEXT, position=5, k=4)
    with torch.no_grad():  # row 2 = the residual after block 1, decoded with ln_final (fresh statistics), then W_U
        decoded = lm.unembed(lm.ln_final(cache["blocks.1.hook_resid_post"]))[0, 5]
        embed_row = lm.unembed(lm.ln_final(cache["blocks.0.hook_resid_pre"]))[0, 5]
    before = lens.current()
    lens.layer.value = 2
    now = lens.current()
    assert now["layer"] == 2 and now is not before
    assert [r["token_id"] for r in now["top"]] == decoded.topk(4).indices.tolist()
    assert [r["prob"] for r in now["top"]] == pytest.approx(decoded.softmax(-1).topk(4).values.tolist(), abs=1e-5)
    assert now["kl_here"] == pytest.approx(kl(logits[5], decoded).item(), rel=1e-4, abs=1e-5)
    assert now["kl"][0] == pytest.approx(kl(logits[5], embed_row).item(), rel=1e-4, abs=1e-5)
    # what the Output widget shows: the table names the top guess, and a figure is drawn
    table = shown(lens, "text/html")[0]
    assert html.escape(repr(now["top"][0]["token"])) in table
    assert len(shown(lens, "image/png")) == 1
    lens.k.value = 7
    assert len(lens.current()["top"]) == 7


def test_lens_new_text_resizes_the_position_slider(lm):
    lens = logit_lens_explorer(lm, TEXT, position=12)
    lens.text.value = "the dog ran in."
    words = lm.to_str_tokens("the dog ran in.")
    assert lens.position.max == len(words) - 1
    now = lens.current()
    assert now["str_tokens"] == words and now["position"] == len(words) - 1 and now["target"] is None
    lens.position.value = 0
    assert lens.current()["input"] == words[0] and lens.current()["target"] == words[1]


def test_lens_bad_text_typed_in_keeps_the_last_view(lm):
    lens = logit_lens_explorer(lm, TEXT)
    before = lens.current()
    lens.text.value = "   "
    assert isinstance(lens.error, ValueError)
    assert "non-empty" in lens.status.value
    assert lens.current() == before
    lens.text.value = TEXT + " and then"
    assert lens.error is None and lens.current()["text"] == TEXT + " and then"


@pytest.mark.parametrize("kwargs, match", [
    (dict(layer=5), "layer"), (dict(layer=-1), "layer"), (dict(layer=1.0), "layer"), (dict(layer=True), "layer"),
    (dict(position=17), "position"), (dict(position=-18), "position"), (dict(k=0), "k"),
    (dict(text=""), "non-empty"), (dict(text=None), "non-empty"), (dict(text="the " * 200), "context"),
])
def test_lens_rejects_bad_arguments(lm, kwargs, match):
    args = {"text": TEXT, **kwargs}
    with pytest.raises(ValueError, match=match):
        logit_lens_explorer(lm, **args)


def test_lens_rejects_a_model_that_is_not_a_language_model():
    with pytest.raises(ValueError, match="TransformerLens language model"):
        logit_lens_explorer(torch.nn.Linear(2, 2), TEXT)


# ------------------------------------------------------------------------------------------------ attention


@pytest.fixture(scope="module")
def attn(lite2):
    return attention_explorer(lite2, TEXT, seq_len=20)


def test_attention_shows_the_chosen_heads_pattern(lite2, attn):
    _, cache = lite2.run_with_cache(lite2.to_tokens(TEXT))
    seen = []
    for layer, head in [(0, 0), (1, 2), (0, 3), (1, 1)]:
        attn.layer.value, attn.head.value = layer, head
        now = attn.current()
        expected = cache["pattern", layer][0, head]
        assert (now["layer"], now["head"]) == (layer, head)
        assert torch.allclose(now["pattern"], expected), f"head {layer}.{head}: not that head's pattern"
        drawn = torch.as_tensor(attn.figure.axes[0].images[0].get_array().data)
        assert torch.allclose(drawn.float(), expected.float(), atol=1e-6), "the heatmap is not the pattern"
        assert now["str_tokens"] == lite2.to_str_tokens(TEXT)
        seen.append(now["pattern"])
    assert not torch.allclose(seen[1], seen[3]), "changing the head must change the pattern"


def test_attention_scores_match_the_pattern_and_the_model_card(lite2, attn):
    _, cache = lite2.run_with_cache(lite2.to_tokens(TEXT))
    pattern = cache["pattern", 1][0, 2]
    attn.layer.value, attn.head.value = 1, 2
    prev = torch.stack([pattern[q, q - 1] for q in range(1, pattern.shape[0])]).mean()
    assert attn.current()["scores"]["previous-token (this text)"] == pytest.approx(prev.item(), abs=1e-5)

    from mi_course.language.induction import repeated_random_tokens

    n = 20
    _, rep = lite2.run_with_cache(repeated_random_tokens(lite2, n, 8, 0))
    rep_pattern = rep["pattern", 1][:, 2]  # [batch, query, key]
    induction = torch.stack([rep_pattern[:, q, q - n + 1] for q in range(n + 1, 2 * n + 1)]).mean()
    duplicate = torch.stack([rep_pattern[:, q, q - n] for q in range(n + 1, 2 * n + 1)]).mean()
    scores = attn.current()["scores"]
    assert scores["induction (random)"] == pytest.approx(induction.item(), abs=1e-5)
    assert scores["duplicate-token (random)"] == pytest.approx(duplicate.item(), abs=1e-5)

    measured = mi_course.model_card("attn-only-2l", mode="lite").get("measured") or {}
    if "induction_head" in measured:
        attn.layer.value, attn.head.value = measured["induction_head"]
        assert attn.current()["ranks"]["induction (random)"] == 1
        assert attn.current()["scores"]["induction (random)"] > 0.5
    if "prev_token_head" in measured:
        attn.layer.value, attn.head.value = measured["prev_token_head"]
        assert attn.current()["ranks"]["previous-token (random)"] == 1
    assert "induction (random)" in shown(attn, "text/html")[0]


@pytest.mark.parametrize("kwargs, match", [
    (dict(layer=2), "layer"), (dict(head=4), "head"), (dict(head=-1), "head"), (dict(text=""), "non-empty"),
    (dict(text="the " * 200), "context"), (dict(seq_len=64), "seq_len"),
])
def test_attention_rejects_bad_arguments(lite2, kwargs, match):
    with pytest.raises(ValueError, match=match):
        attention_explorer(lite2, **{"text": TEXT, **kwargs})


def test_attention_displays_as_a_widget(attn):
    bundle = attn._repr_mimebundle_()
    assert bundle[WIDGET_VIEW]["model_id"] == attn.widget.model_id
    assert attn.layer in attn.widget.children[0].children and attn.output in attn.widget.children


# ------------------------------------------------------------------------------------------------ superposition


SPARSITIES = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98)


class CountingTrain:
    """train_toy_model, counting its calls (the explorer must train once per decay)."""

    def __init__(self, fail_at_decay=None):
        self.calls, self.fail_at_decay = [], fail_at_decay

    def __call__(self, model, feature_probability, importance, **kwargs):
        self.calls.append(importance.clone())
        if self.fail_at_decay is not None and importance[1].item() == pytest.approx(self.fail_at_decay):
            raise NotImplementedError("exercise 08.train_toy_model: not started yet")
        return train_toy_model(model, feature_probability, importance, **kwargs)


@pytest.fixture(scope="module")
def toy():
    train = CountingTrain(fail_at_decay=0.8)
    return superposition_explorer(ToyModel, train, sparsities=SPARSITIES, decays=(1.0, 0.9, 0.8), decay=0.9)


def test_sparser_features_get_more_arrows(toy):
    toy.decay.value = 0.9
    counts = {}
    for s in SPARSITIES:
        toy.sparsity.value = s
        now = toy.current()
        norms = now["W"].norm(dim=0)
        assert now["n_represented"] == int((norms > 0.5).sum()), "represented means an arrow longer than 0.5"
        counts[s] = now["n_represented"]
    assert counts[0.0] <= 2, f"dense features: at most one per dimension (2), got {counts}"
    assert counts[0.98] == 5, f"very sparse features: all five in superposition, got {counts}"
    low, high = SPARSITIES[:3], SPARSITIES[-3:]
    assert sum(counts[s] for s in high) > sum(counts[s] for s in low), f"no rise with sparsity: {counts}"


def test_the_arrows_are_the_trained_models_columns(toy):
    torch.manual_seed(0)
    model = ToyModel(5, 2, len(SPARSITIES))
    importance = 0.9 ** torch.arange(5.0)
    train_toy_model(model, 1 - torch.tensor(SPARSITIES), importance, steps=1000, batch_size=512, lr=2e-2, seed=0)
    toy.decay.value = 0.9
    toy.sparsity.value = 0.7
    now = toy.current()
    assert torch.allclose(now["W"], model.W.detach()[2], atol=1e-5), "instance 2 (S = 0.7) of the trained grid"
    assert torch.allclose(now["b_final"], model.b_final.detach()[2], atol=1e-5)
    assert now["importance"] == pytest.approx(importance.tolist())
    assert len(shown(toy, "image/png")) == 1 and "S = 0.7" in toy.status.value


def test_training_happens_once_per_decay():
    train = CountingTrain()
    toy = superposition_explorer(ToyModel, train, sparsities=(0.0, 0.5, 0.9), decays=(1.0, 0.9), steps=20)
    assert len(train.calls) == 1 and train.calls[0].tolist() == pytest.approx((0.9 ** torch.arange(5.0)).tolist())
    for s in (0.5, 0.9, 0.0):
        toy.sparsity.value = s
    assert len(train.calls) == 1, "moving the sparsity slider must only redraw"
    toy.decay.value = 1.0
    assert len(train.calls) == 2 and train.calls[1].tolist() == [1.0] * 5
    toy.decay.value = 0.9
    toy.decay.value = 1.0
    assert len(train.calls) == 2, "a decay seen before comes from the cache"
    assert set(toy.trained) == {0.9, 1.0}


def test_a_failing_train_is_reported_not_raised(toy):
    toy.decay.value = 0.9
    before = toy.current()
    toy.decay.value = 0.8
    assert isinstance(toy.error, NotImplementedError) and "not started" in toy.status.value
    assert toy.current() == before and 0.8 not in toy.trained


def test_a_transposed_W_is_caught():
    class Transposed(torch.nn.Module):
        def __init__(self, n_features, n_hidden, n_instances=1):
            super().__init__()
            self.n_features, self.n_instances = n_features, n_instances
            self.W = torch.nn.Parameter(torch.randn(n_instances, n_features, n_hidden))
            self.b_final = torch.nn.Parameter(torch.zeros(n_instances, n_features))

    with pytest.raises(ValueError, match=r"W should be a tensor of shape \[7, 2, 5\]"):
        superposition_explorer(Transposed, lambda *args, **kwargs: [], steps=1)


@pytest.mark.parametrize("kwargs, match", [
    (dict(sparsity=0.33), "sparsity must be one of"), (dict(decay=0.6), "decay must be one of"),
    (dict(sparsities=(0.0, 1.0)), r"sparsities must be numbers in \[0.0, 1.0\)"),
    (dict(sparsities=(0.0, 0.5, 0.5)), "repeated"), (dict(decays=(0.0, 1.0)), "above 0"),
    (dict(n_features=1), "n_features"), (dict(steps=0), "steps"), (dict(lr=-1.0), "lr"),
])
def test_superposition_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        superposition_explorer(ToyModel, train_toy_model, **kwargs)


def test_superposition_needs_the_learners_functions():
    with pytest.raises(ValueError, match="ToyModel class and train_toy_model"):
        superposition_explorer(None, train_toy_model)


def test_a_notebook_without_gradients_still_trains():
    with torch.no_grad():
        toy = superposition_explorer(ToyModel, train_toy_model, sparsities=(0.0, 0.9), decays=(0.9,), steps=20)
    assert toy.current()["W"].shape == (2, 5)


# ------------------------------------------------------------------------------------------------ Colab


def test_colab_gets_its_widget_manager(monkeypatch):
    calls = []
    output = types.SimpleNamespace(enable_custom_widget_manager=lambda: calls.append(1))
    colab = types.ModuleType("google.colab")
    colab.output = output
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.output", output)
    enable_colab_widgets()
    assert calls == [1]

    def broken():
        raise RuntimeError("no widget manager here")

    output.enable_custom_widget_manager = broken
    enable_colab_widgets()  # must not raise
