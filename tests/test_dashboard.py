"""Lesson 10's feature dashboards (mi_course.saes.dashboard, dashboard_html) and the feature browser, checked
against the shipped lite lm + SAE on held-out corpus documents: every panel against a computation written
here (the SAE's own encode on the model's own cache, W_dec @ W_U, cosines, Pearson correlations with numpy),
the HTML as a parser reads it, and the browser driven headless. Feature ids come from the SAE's card (the
checkpoints are retrained from time to time), never from this file.

Measured on the shipped checkpoints when the thresholds were set (label held-out prediction scores, seeds
below): latin 0.84, bridge 0.62, praise 0.35; the bridge sentence's mean shade 0.21, the IOI sentence's 0."""

import html
import html.parser
import re
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mi_course
from mi_course.models.registry import lite_shipped
from mi_course.organisms import corpus
from mi_course.organisms.tokenizer import pre_tokenize
from mi_course.saes import TopKSAE
from mi_course.saes.dashboard import (
    FeatureActivations,
    activation_histogram,
    feature_activations,
    feature_dashboard,
    feature_dashboards,
    interval_examples,
    label_features,
    labelled_rows,
    max_activating_examples,
    nearest_features,
    neuronpedia_url,
    prediction_score,
    text_view,
    top_logit_effects,
)

FIT_SEED, HELDOUT_SEED = 21, 22  # two sets of held-out documents: labels chosen on one, scored on the other
N_DOCUMENTS = 300
# held-out prediction score each seed concept's feature must reach (measured: latin 0.84, bridge 0.62, praise 0.35)
SCORE_THRESHOLDS = {"latin": 0.5, "bridge": 0.35, "praise": 0.2}
BRIDGE_TEXT = "Ships pass under the Golden Gate Bridge on their way into the bay. The bridge is painted a deep red."
NEUTRAL_TEXT = "When Mary and John went to the store, John gave a drink to Mary."


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def lm():
    for role in ("lm", "sae", "sae-b"):
        if not lite_shipped(role):
            pytest.skip(f"the lite {role} is not shipped")
    return mi_course.load_model("lm", mode="lite", device="cpu")


@pytest.fixture(scope="module")
def sae(lm):
    return mi_course.load_model("sae", mode="lite", device="cpu")


@pytest.fixture(scope="module")
def sae_b(lm):
    return mi_course.load_model("sae-b", mode="lite", device="cpu")


@pytest.fixture(scope="module")
def card_features(sae):
    return {concept: info["feature"] for concept, info in mi_course.model_card("sae", "lite")["features"].items()}


def rows_of(lm, seed):
    documents = corpus.generate_documents(N_DOCUMENTS, seed=seed, split="heldout")
    return documents, *labelled_rows(lm.tokenizer, documents, n_ctx=128)


@pytest.fixture(scope="module")
def heldout_rows(lm):
    return rows_of(lm, HELDOUT_SEED)


@pytest.fixture(scope="module")
def acts(lm, sae, heldout_rows):
    _, tokens, labels = heldout_rows
    return feature_activations(sae, lm, tokens, labels=labels)


@pytest.fixture(scope="module")
def fit_acts(lm, sae):
    _, tokens, labels = rows_of(lm, FIT_SEED)
    return feature_activations(sae, lm, tokens, labels=labels)


@pytest.fixture(scope="module")
def labels(fit_acts, acts):
    return label_features(fit_acts, acts)


@pytest.fixture(scope="module")
def reference(lm, sae, heldout_rows):
    """The SAE's encode on the model's own cache, every position, written here without the module: dense
    [rows, pos, d_sae], and which positions are text (not position 0, BOS or padding)."""
    _, tokens, _ = heldout_rows
    with torch.no_grad():
        _, cache = lm.run_with_cache(tokens, names_filter=sae.hook_name)
        dense = sae.encode(cache[sae.hook_name])
    text = (tokens != lm.tokenizer.bos_token_id) & (tokens != lm.tokenizer.pad_token_id)
    text[:, 0] = False
    return dense, text


@pytest.fixture(scope="module")
def bridge_dashboard(lm, sae, sae_b, acts, labels, card_features):
    return feature_dashboard(sae, lm, acts, card_features["bridge"], other_sae=sae_b, labels=labels)


# ------------------------------------------------------------------------------------------------ activations


def test_rows_carry_the_corpus_labels(heldout_rows):
    documents, tokens, labels = heldout_rows
    for genre in ("bridge", "latin", "code"):
        expected = sum(len(pre_tokenize(d.text)) for d in documents if d.genre == genre)
        assert int(labels[f"genre:{genre}"].sum()) == expected > 0, genre
    # a label never holds on BOS, EOS or padding
    special = torch.isin(tokens, torch.tensor([0, 2, 3]))
    assert not any(mask[special].any() for mask in labels.values())
    assert labels["praise"].any() and labels["bridge"].sum() >= labels["genre:bridge"].sum()


def test_sparse_activations_are_the_saes_encode(acts, reference):
    dense, text = reference
    assert acts.shape == tuple(text.shape) and torch.equal(acts.counted, text)
    assert len(acts.values) == int((dense[text] != 0).sum())
    for f in (0, 17, 511, acts.d_sae - 1, int(dense[text].amax(0).argmax())):
        expected = dense[..., f] * text
        assert torch.allclose(acts.feature(f), expected, atol=1e-5), f
    assert torch.allclose(acts.max_values(), (dense * text[..., None]).amax((0, 1)), atol=1e-5)


# ------------------------------------------------------------------------------------------------ histogram


def test_histogram_counts_the_non_zero_activations(acts, reference, card_features):
    dense, text = reference
    for f in (*card_features.values(), 3):
        values = dense[..., f][text]
        hist = activation_histogram(acts.counted_values(f), bins=40)
        active = values[values > 0]
        assert int(hist.counts.sum()) == len(active)
        assert hist.density == pytest.approx(len(active) / int(text.sum()), abs=1e-9)
        assert len(hist.counts) == 40 and len(hist.edges) == 41
        assert float(hist.edges[0]) == 0.0 and float(hist.edges[-1]) == pytest.approx(float(active.max()), rel=1e-6)
        expected, _ = np.histogram(active.numpy(), bins=hist.edges.numpy())
        assert np.abs(expected - hist.counts.numpy()).max() <= 1  # at most a value on a bin edge moves


def test_histogram_of_a_feature_that_never_fires():
    hist = activation_histogram(torch.zeros(7, 5))
    assert hist.density == 0.0 and int(hist.counts.sum()) == 0 and len(hist.counts) == 40
    tokens = torch.arange(12).view(2, 6)
    dead = FeatureActivations.from_dense(tokens, torch.zeros(2, 6, 3))
    assert activation_histogram(dead.counted_values(1)).density == 0.0
    assert max_activating_examples(dead, 1) == [] and interval_examples(dead, 1) == []


# ------------------------------------------------------------------------------------------------ logits


def test_top_logit_effects_on_a_hand_made_sae():
    sae = TopKSAE(d_in=2, d_sae=2, k=1)
    with torch.no_grad():
        sae.W_dec.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    model = types.SimpleNamespace(W_U=torch.tensor([[0.5, -2.0, 3.0, 0.0, 1.0, -0.5],
                                                    [9.0, 9.0, 9.0, 9.0, 9.0, 9.0]]), tokenizer=None)
    effects = top_logit_effects(sae, model, 0, k=2)
    assert effects.top_ids == [2, 4] and effects.top_values == [3.0, 1.0]
    assert effects.bottom_ids == [1, 5] and effects.bottom_values == [-2.0, -0.5]
    assert effects.top_tokens == ["<2>", "<4>"]
    with pytest.raises(ValueError, match="d_vocab // 2 = 3"):
        top_logit_effects(sae, model, 0, k=4)


def test_top_logit_effects_are_the_decoder_through_the_unembedding(lm, sae, card_features):
    for f in card_features.values():
        effect = (sae.W_dec[f] @ lm.W_U).detach()
        got = top_logit_effects(sae, lm, f, k=10)
        assert got.top_values == pytest.approx(effect.sort(descending=True).values[:10].tolist(), abs=1e-5)
        assert got.bottom_values == pytest.approx(effect.sort().values[:10].tolist(), abs=1e-5)
        assert got.top_values == sorted(got.top_values, reverse=True)
        assert got.bottom_values == sorted(got.bottom_values)
        assert not set(got.top_ids) & set(got.bottom_ids)
        assert got.top_tokens == [lm.to_single_str_token(i) for i in got.top_ids]


# ------------------------------------------------------------------------------------------------ examples


def test_max_activating_examples_are_the_largest_peaks(lm, acts, reference, card_features):
    dense, text = reference
    for f in card_features.values():
        column = dense[..., f] * text
        examples = max_activating_examples(acts, f, k=20, context=8)
        assert len(examples) == 20
        values = [e.value for e in examples]
        assert values == sorted(values, reverse=True)
        assert values[0] == pytest.approx(float(column.max()), abs=1e-5)
        for e in examples:
            stop = e.start + len(e.str_tokens)
            assert e.start == max(0, e.position - 8) and stop == min(column.shape[1], e.position + 9)
            window = column[e.row, e.start:stop]
            assert e.value == pytest.approx(float(window.max()), abs=1e-5), "the marked token is its window's max"
            assert e.values == pytest.approx(window.tolist(), abs=1e-5)
            assert e.str_tokens == lm.to_str_tokens(acts.tokens[e.row, e.start:stop])
        assert len({(e.row, e.position) for e in examples}) == 20


def test_example_windows_are_cut_at_the_row_edges():
    values = torch.zeros(2, 10, 1)
    values[0, 1, 0], values[0, 2, 0] = 5.0, 4.0      # one burst near the start: one example
    values[1, 9, 0] = 3.0                             # a peak on the last position
    tokens = torch.arange(20).view(2, 10)
    acts = FeatureActivations.from_dense(tokens, values)
    examples = max_activating_examples(acts, 0, k=5, context=3)
    assert [(e.row, e.position, e.value) for e in examples] == [(0, 1, 5.0), (1, 9, 3.0)]
    assert (examples[0].start, len(examples[0].str_tokens)) == (0, 5)
    assert (examples[1].start, len(examples[1].str_tokens)) == (6, 4)
    assert examples[1].marked == 3


def test_interval_examples_cover_the_range(acts, card_features):
    f = card_features["bridge"]
    intervals = interval_examples(acts, f, n_intervals=10, per_interval=3, seed=0)
    top = float(acts.max_values()[f])
    assert len(intervals) == 10
    assert intervals[0].low == 0.0 and intervals[-1].high == pytest.approx(top, rel=1e-6)
    widths = [i.high - i.low for i in intervals]
    assert max(widths) - min(widths) < 1e-4 * top
    assert all(a.high == b.low for a, b in zip(intervals, intervals[1:]))
    dense = acts.feature(f)
    for interval in intervals:
        assert len(interval.examples) == min(3, interval.n_candidates)
        for e in interval.examples:
            assert interval.low < e.value <= interval.high
            assert e.value == pytest.approx(float(dense[e.row, e.start:e.start + len(e.values)].max()))
    assert intervals[-1].n_candidates >= 1
    again = interval_examples(acts, f, n_intervals=10, per_interval=3, seed=0)
    other = interval_examples(acts, f, n_intervals=10, per_interval=3, seed=1)
    where = lambda ivs: [[(e.row, e.position) for e in i.examples] for i in ivs]  # noqa: E731
    assert where(again) == where(intervals) and where(other) != where(intervals)


# ------------------------------------------------------------------------------------------------ nearest


def test_nearest_features(sae, sae_b, card_features):
    for f in card_features.values():
        itself = nearest_features(sae, sae, f, k=5)
        assert itself.features[0] == f and itself.cosines[0] == pytest.approx(1.0, abs=1e-5)
        other = nearest_features(sae, sae_b, f, k=5)
        cosines = F.cosine_similarity(sae.W_dec[f][None], sae_b.W_dec, dim=-1).detach()
        assert other.features[0] == int(cosines.argmax())
        assert other.cosines == pytest.approx(cosines[other.features].tolist(), abs=1e-5)
        assert other.cosines == sorted(other.cosines, reverse=True)
        assert all(-1 <= c <= 1 for c in other.cosines)


# ------------------------------------------------------------------------------------------------ labels


@pytest.mark.parametrize("concept", sorted(SCORE_THRESHOLDS))
def test_seed_features_get_their_label(concept, labels, card_features):
    label = labels[card_features[concept]]
    print(f"{concept}: feature {label.feature}, label {label.label}, fit {label.fit_correlation:.3f}, "
          f"held-out score {label.score:.3f}")
    assert label.label in (concept, f"genre:{concept}")
    assert label.score > SCORE_THRESHOLDS[concept]


def test_label_is_the_best_candidate_and_the_score_is_held_out(fit_acts, acts, labels, card_features):
    f = card_features["bridge"]
    chosen = labels[f]
    y_fit, y_held = fit_acts.counted_values(f).numpy(), acts.counted_values(f).numpy()
    fit_corr = {name: np.corrcoef(mask[fit_acts.counted].numpy().astype(float), y_fit)[0, 1]
                for name, mask in fit_acts.labels.items()}
    assert chosen.fit_correlation == pytest.approx(max(fit_corr.values()), abs=1e-4)
    assert fit_corr[chosen.label] == pytest.approx(max(fit_corr.values()), abs=1e-9)
    # the score: predict each held-out token with the label's two means on the fit set, correlate
    in_fit = fit_acts.labels[chosen.label][fit_acts.counted].numpy()
    predicted = np.where(acts.labels[chosen.label][acts.counted].numpy(), y_fit[in_fit].mean(), y_fit[~in_fit].mean())
    expected = np.corrcoef(predicted, y_held)[0, 1]
    assert chosen.score == pytest.approx(expected, abs=1e-4)
    assert prediction_score(fit_acts, acts, f, chosen.label) == pytest.approx(expected, abs=1e-6)


# ------------------------------------------------------------------------------------------------ HTML


class Checker(html.parser.HTMLParser):
    """Collects tags, attributes and text, and fails on a closing tag that does not close the open one."""

    VOID = {"meta", "br", "img", "input", "link", "hr", "rect", "line"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.tags, self.attrs, self.text = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(markup):
    checker = Checker()
    checker.feed(markup)
    checker.close()
    assert checker.stack == [], f"unclosed tags {checker.stack}"
    return checker


def test_dashboard_html_is_standalone_and_has_every_panel(bridge_dashboard, tmp_path, card_features):
    page = bridge_dashboard.to_html(standalone=True)
    assert len(page.encode()) < 200_000
    for raw in ("<bos>", "<eos>", "<pad>", "<unk>"):
        assert raw not in page
    assert "&lt;bos&gt;" in page or "&lt;eos&gt;" in page
    assert not re.search(r"<script|<link|<iframe|<img|@import|url\(|src\s*=", page, re.I)
    assert "http" not in page and "neuronpedia" not in page.lower()  # lite: no link
    path = bridge_dashboard.save(tmp_path / "feature.html")
    checker = parse(path.read_text(encoding="utf-8"))
    assert {"html", "body", "svg", "table"} <= set(checker.tags)
    text = "".join(checker.text)
    for panel in ("Activations (non-zero)", "Top positive logits", "Top negative logits", "Top activations",
                  "Activation intervals", "Nearest in sae-b", f"Feature {card_features['bridge']}", "density",
                  bridge_dashboard.label.label, bridge_dashboard.logits.top_tokens[0]):
        assert panel in text, panel
    titles = [v for k, v in checker.attrs if k == "title"]
    assert sum(t.endswith(f"{bridge_dashboard.max_activation:.3f}") for t in titles) >= 1
    assert bridge_dashboard._repr_html_() == bridge_dashboard.to_html()


def test_html_escapes_and_shows_whitespace(lm, sae):
    str_tokens = [["<bos>", "if", "a", "<", "b", "&", "c", "\n", "    ", "print"]]
    values = torch.zeros(1, 10, sae.d_sae)
    values[0, 3, 5] = 2.0
    acts = FeatureActivations.from_dense(torch.zeros(1, 10, dtype=torch.long), values, str_tokens=str_tokens)
    page = feature_dashboard(sae, lm, acts, 5).to_html(standalone=True)
    checker = parse(page)
    text = "".join(checker.text)
    assert "<bos>" not in page and "&lt;bos&gt;" in page and ">&lt;<" in page and ">&amp;<" in page
    assert "↵" in text and "⇥" in text and "<bos>" in text  # the parser reads the escaped token back
    assert "'<': 2.000" in [v for k, v in checker.attrs if k == "title"]


def test_dashboards_for_many_features(lm, sae, acts):
    dashboards = feature_dashboards(sae, lm, acts, range(0, 1024, 128))
    assert [d.feature for d in dashboards] == list(range(0, 1024, 128))
    for d in dashboards:
        assert d.density == pytest.approx(float((acts.counted_values(d.feature) > 0).float().mean()))
        assert len(d.to_html().encode()) < 200_000


# ------------------------------------------------------------------------------------------------ text view


def test_text_view_shades_a_bridge_text_more_for_the_bridge_feature(lm, sae, acts, card_features):
    f = card_features["bridge"]
    shades = {}
    for name, text in (("bridge", BRIDGE_TEXT), ("neutral", NEUTRAL_TEXT)):
        view = text_view(sae, lm, text, [f, card_features["latin"]], activations=acts)
        assert view.str_tokens == lm.to_str_tokens(text)
        markup = view.to_html()
        line = markup.split("<span class='v'>feature ")[1]  # the bridge feature's line
        alphas = [float(a) for a in re.findall(r"background:rgba\(\d+,\d+,\d+,([\d.]+)\)", line)]
        assert sum(alphas) == pytest.approx(float(view.shading()[0].sum()), abs=0.01 * len(view.str_tokens))
        shades[name] = float(view.shading()[0, 1:].mean())
        assert float(view.scales[0]) == pytest.approx(float(acts.max_values()[f]))
    print(f"mean shade of the bridge feature: bridge text {shades['bridge']:.3f}, neutral {shades['neutral']:.3f}")
    assert shades["bridge"] > shades["neutral"] + 0.1


# ------------------------------------------------------------------------------------------------ browser


def test_feature_browser_headless(lm, sae, sae_b, acts, labels, card_features, reference):
    from mi_course.explorers.feature_browser import feature_browser

    browser = feature_browser(sae, lm, acts, other_sae=sae_b, labels=labels, page_size=10)

    def shown():
        return "".join(o["data"]["text/html"] for o in browser.output.outputs)

    now = browser.current()
    assert now["page_features"] == list(range(10)) and now["feature"] == 0 and "Feature 0 " in shown()
    browser.next_page.click()
    assert browser.current()["page_features"] == list(range(10, 20)) and browser.current()["feature"] == 10
    browser.prev_page.click()
    browser.prev_page.click()  # stays on the first page
    assert browser.current()["page"] == 1
    browser.page_size.value = 20
    assert browser.current()["n_pages"] == 52

    # search by a top token: the token where the bridge feature peaks, found here from the reference encode
    dense, text = reference
    f = card_features["bridge"]
    column = (dense[..., f] * text).reshape(-1)
    top_token = lm.to_single_str_token(int(acts.tokens.reshape(-1)[column.argmax()]))
    browser.page.value = 3
    before = shown()
    browser.search.value = top_token
    now = browser.current()
    assert f in now["matches"] and now["page"] == 1 and now["feature"] == now["matches"][0]
    assert len(now["matches"]) < sae.d_sae
    flat_tokens = acts.tokens.reshape(-1)
    for g in now["matches"]:  # each match has the token among its top activations or top logits
        near = set(lm.to_str_tokens(flat_tokens[(dense[..., g] * text).reshape(-1).topk(20).indices]))
        near |= set(lm.to_str_tokens((sae.W_dec[g] @ lm.W_U).topk(10).indices))
        assert top_token.lower() in {t.lower() for t in near}, g
    if f not in now["page_features"]:
        browser.page.value = now["matches"].index(f) // 20 + 1
    browser.feature.value = f
    assert browser.current()["feature"] == f and f"Feature {f} " in shown() and shown() != before

    browser.search_by.value = "label"
    browser.search.value = "bridge"
    assert f in browser.current()["matches"]
    assert all("bridge" in labels[g].label for g in browser.current()["matches"])
    browser.search.value = "no such label"
    assert browser.current()["matches"] == [] and browser.current()["feature"] is None and browser.error is None


# ------------------------------------------------------------------------------------------------ bad input


def test_bad_input_says_what_was_expected(lm, sae, sae_b, acts, fit_acts):
    with pytest.raises(ValueError, match=r"0\.\.1023"):
        feature_dashboard(sae, lm, acts, sae.d_sae)
    with pytest.raises(ValueError, match="feature must be an int"):
        feature_dashboard(sae, lm, acts, 2.0)
    with pytest.raises(ValueError, match=r"0\.\.1023"):
        max_activating_examples(acts, -1)
    with pytest.raises(ValueError, match=r"activations must be \[rows=2, pos=3, d_sae\]"):
        FeatureActivations.from_dense(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 4, 5))
    with pytest.raises(ValueError, match="tokens must be an integer tensor"):
        feature_activations(sae, lm, torch.zeros(5, dtype=torch.long))
    small = FeatureActivations.from_dense(torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 4, 8))
    with pytest.raises(ValueError, match="d_sae=1024"):
        feature_dashboard(sae, lm, small, 0)
    with pytest.raises(ValueError, match="labelled_rows"):
        label_features(small, small)
    with pytest.raises(ValueError, match="non-empty string"):
        text_view(sae, lm, "  ", [0])
    with pytest.raises(ValueError, match="different widths"):
        nearest_features(sae, TopKSAE(d_in=8, d_sae=16, k=2), 0)
    with pytest.raises(ValueError, match="label must be one of"):
        prediction_score(fit_acts, acts, 0, "poetry")


# ------------------------------------------------------------------------------------------------ full mode


def test_dashboard_for_a_saelens_sae_on_a_random_gpt2_like_model():
    """Full mode's shapes and objects at toy size: a GPT-2-style HookedTransformer (LayerNorm, GELU, no
    tokenizer) at random weights and a SAELens StandardSAE; the Neuronpedia link appears for the SAELens
    release and from the SAE's metadata, and never for the lite SAE (see the HTML test above)."""
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    torch.manual_seed(0)
    cfg = HookedTransformerConfig(n_layers=2, d_model=32, d_head=8, n_heads=4, d_mlp=64, n_ctx=16, d_vocab=60,
                                  act_fn="gelu_new", normalization_type="LN", seed=0)
    model = HookedTransformer(cfg)
    sae = StandardSAE(StandardSAEConfig(d_in=32, d_sae=48, metadata=SAEMetadata(hook_name="blocks.1.hook_resid_pre")))
    tokens = torch.randint(0, 60, (6, 16))
    acts = feature_activations(sae, model, tokens, batch_rows=4)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter="blocks.1.hook_resid_pre")
        dense = sae.encode(cache["blocks.1.hook_resid_pre"])
    dense[:, 0] = 0
    f = int((dense > 0).sum((0, 1)).argmax())
    assert torch.allclose(acts.feature(f), dense[..., f], atol=1e-5)
    dash = feature_dashboard(sae, model, acts, f, release="gpt2-small-res-jb", context=3)
    url = f"https://www.neuronpedia.org/gpt2-small/1-res-jb/{f}"
    assert dash.neuronpedia == url
    page = dash.to_html(standalone=True)
    assert f"href='{url}'" in page and page.count("http") == 1 and "<pad>" not in page
    assert max_activating_examples(acts, f, k=1, context=3)[0].value == pytest.approx(float(dense[..., f].max()))
    assert feature_dashboard(sae, model, acts, f).neuronpedia is None  # no release: no link
    sae.cfg.metadata.neuronpedia_id = "gpt2-small/8-res-jb"  # what SAE.from_pretrained records
    assert feature_dashboard(sae, model, acts, f).neuronpedia == f"https://www.neuronpedia.org/gpt2-small/8-res-jb/{f}"
    assert neuronpedia_url(5, "gpt2-small-res-jb", "blocks.8.hook_resid_pre") == \
        "https://www.neuronpedia.org/gpt2-small/8-res-jb/5"
    assert neuronpedia_url(5, "gpt2-small-res-jb", "blocks.11.hook_resid_post").endswith("/12-res-jb/5")
    assert neuronpedia_url(5, "some-other-release", "blocks.8.hook_resid_pre") is None
