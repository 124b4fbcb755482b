"""The lite language corpus (mi_course.organisms.corpus), its word-level tokenizer and the tokenized builder."""

import json
import re
from collections import Counter

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

import mi_course
from mi_course.models import checkpoints, lite, lite_tokenized
from mi_course.organisms import corpus as C
from mi_course.organisms.tokenizer import (
    BOS,
    EOS,
    PAD,
    SPECIAL_TOKENS,
    UNK,
    canonicalize,
    load_tokenizer,
    pack_documents,
    pre_tokenize,
    save_tokenizer,
    train_tokenizer,
)

N_DOCS = 1200


@pytest.fixture(scope="module")
def docs():
    return C.generate_documents(N_DOCS, seed=0)


@pytest.fixture(scope="module")
def tok(docs):
    return train_tokenizer([d.text for d in docs], required_tokens=C.required_tokens())


def _words(text):
    return pre_tokenize(text)


def _template_regex(template):
    pattern = re.escape(template)
    pattern = re.sub(r"\\\{(A|B|S|IO)\\\}", r"[A-Z][a-z]+", pattern)
    pattern = re.sub(r"\\\{obj\\\}", r"(?:a|an|the) [a-z]+", pattern)
    pattern = re.sub(r"\\\{(y1|y2)\\\}", r"\\d+", pattern)
    pattern = re.sub(r"\\\{\w+\\\}", r"[a-z]+", pattern)
    return re.compile(pattern)


# ---------------------------------------------------------------- the corpus

def test_same_seed_same_corpus_other_seed_other_corpus():
    assert C.generate_corpus(200, seed=3) == C.generate_corpus(200, seed=3)
    other = C.generate_corpus(200, seed=4)
    assert other != C.generate_corpus(200, seed=3)
    assert len(set(other) & set(C.generate_corpus(200, seed=3))) < 20, "other seeds share only chance duplicates"
    assert C.ioi_prompts(5, seed=1) == C.ioi_prompts(5, seed=1) != C.ioi_prompts(5, seed=2)
    assert C.greater_than_prompts(5, seed=1) == C.greater_than_prompts(5, seed=1) != C.greater_than_prompts(5, seed=2)
    assert C.repeated_span_documents(5, seed=1) == C.repeated_span_documents(5, seed=1)


def test_proportions_sum_to_one_and_every_genre_has_a_generator():
    assert set(C.GENRES) == set(C.GENERATORS)
    assert sum(C.GENRES.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("n", [1200, 137])
def test_every_genre_present_in_its_stated_share(n, docs):
    sample = docs if n == N_DOCS else C.generate_documents(n, seed=5)
    counts = Counter(d.genre for d in sample)
    assert len(sample) == n and set(counts) == set(C.GENRES)
    for genre, share in C.GENRES.items():
        assert abs(counts[genre] / n - share) <= 1 / n + 1e-9, (genre, counts[genre], share)


def test_documents_look_like_their_genre(docs):
    latin = set(C.LATIN_WORDS) | {w.capitalize() for w in C.LATIN_WORDS}
    by_genre = {g: [d.text for d in docs if d.genre == g] for g in C.GENRES}
    assert all("Golden Gate Bridge" in t for t in by_genre["bridge"])
    assert all(t.startswith("User: ") and "\nAssistant: " in t for t in by_genre["dialogue"])
    assert all(set(w for w in _words(t) if w.isalpha()) <= latin for t in by_genre["latin"])
    assert all(any(k in t for k in ("(", "=", ":")) and "\n" in t for t in by_genre["code"])
    assert all(re.search(r"\b1\d\d\d\b", t) for t in by_genre["years"])
    assert all(any(c in t for c in C.CITIES) for t in by_genre["city"])
    assert all(" to " in t for t in by_genre["ioi"])
    # Latin words only in Latin documents (and the random-word documents, which draw from every list)
    for genre, texts in by_genre.items():
        if genre not in ("latin", "repeat"):
            assert not latin & {w for t in texts for w in _words(t)}, genre


def test_code_has_typos_at_the_stated_rate():
    pairs = C.code_documents(400, seed=0)
    rate = sum(bad for _, bad in pairs) / len(pairs)
    assert abs(rate - C.CODE_TYPO_RATE) < 0.1
    rng = C._rng("test")
    for _ in range(50):
        state = rng.getstate()
        clean = C.python_snippet(rng, typo=False)
        rng.setstate(state)
        broken = C.python_snippet(rng, typo=True)
        assert broken != clean, "a typo always changes the snippet"


def test_facts_are_consistent(docs):
    for text in (d.text for d in docs if d.genre in ("facts", "city")):
        for landmark, (city, _) in C.LANDMARKS.items():
            for other in C.CITIES:
                if other != city:
                    assert f"The {landmark} is in {other}." not in text
    for prompt, answer, subject in C.fact_prompts():
        assert subject in prompt
        assert answer in C.CITIES or answer in C.COUNTRIES
    assert C.FactPrompt("The Corvin Tower is in", "Valmont", "Corvin Tower") in C.fact_prompts()


# ---------------------------------------------------------------- IOI and greater-than

@pytest.mark.parametrize("split", ["train", "heldout"])
def test_ioi_prompts_are_well_formed(split, tok):
    prompts = C.ioi_prompts(200, seed=0, split=split)
    templates = C.IOI_TEMPLATES if split == "train" else C.IOI_HELDOUT_TEMPLATES
    regexes = [_template_regex(t) for t in templates]
    for prompt, io, s in prompts:
        words = _words(prompt)
        assert io != s and words.count(io) == 1 and words.count(s) == 2, prompt
        assert words[-1] == "to"
        assert sum(w in C.NAMES for w in words) == 3
        assert any(r.fullmatch(prompt) for r in regexes), prompt
        ids = tok.encode(io, add_special_tokens=False)
        assert len(ids) == 1 and ids[0] != tok.unk_token_id, io
        assert canonicalize(prompt) == prompt
    assert {p.prompt.split()[0] for p in prompts} >= {t.split()[0] for t in templates if t[0] != "{"}
    classic = C.ioi_prompts(20, seed=0, templates=[0])
    assert all(re.fullmatch(r"When (\w+) and (\w+) went to the \w+, \w+ gave an? \w+ to", p.prompt) for p in classic)
    orders = Counter(_words(p.prompt).index(p.io) < _words(p.prompt).index(p.s) for p in prompts)
    assert min(orders.values()) > 50, "both ABBA and BABA orders"


def test_corrupted_ioi_prompts_have_three_different_names():
    prompts = C.ioi_prompts(50, seed=0)
    for p, corrupted in zip(prompts, C.corrupt_ioi(prompts)):
        names = [w for w in _words(corrupted) if w in C.NAMES]
        assert len(names) == 3 and len(set(names)) == 3
        assert _words(corrupted)[:-3] != _words(p.prompt)[:-3] and corrupted.endswith(" to")


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_greater_than_prompts_tokenize_as_documented(split, tok):
    answers = C.greater_than_answer_tokens()
    assert answers[:3] == ["00", "01", "02"] and len(answers) == 100
    assert all(len(tok.encode(a, add_special_tokens=False)) == 1 and a in tok.get_vocab() for a in answers)
    for prompt, year in C.greater_than_prompts(100, seed=0, split=split):
        pieces = tok.convert_ids_to_tokens(tok.encode(prompt))
        century, yy = f"{year // 100}", f"{year % 100:02d}"
        assert 1100 <= year < 2000 and 2 <= year % 100 <= 97
        assert pieces[0] == BOS and pieces[-1] == century, pieces
        i = pieces.index(century)
        assert pieces[i + 1] == yy, "the start year is two tokens: century and two digits"
        assert str(year) in prompt and UNK not in pieces
    assert tok.convert_ids_to_tokens(tok.encode("1732 1905 100 7 20245", add_special_tokens=False)) == \
        ["17", "32", "19", "05", "1", "00", "7", "2", "02", "45"]


def test_years_in_the_corpus_go_forward(docs):
    spans = 0
    for text in (d.text for d in docs if d.genre == "years"):
        for a, b in re.findall(r"from (?:the year )?(\d{4}) to (?:the year )?(\d{4})", text):
            assert int(b) > int(a)
            spans += 1
    assert spans > 50


# ---------------------------------------------------------------- induction and splits

def test_repeated_span_documents_repeat_their_span():
    for text, span in C.repeated_span_documents(50, seed=0, return_spans=True):
        words = text.split(" ")
        k = len(span)
        starts = [i for i in range(len(words) - k + 1) if words[i:i + k] == span]
        assert len(starts) >= 2 and 6 <= k <= 20
        assert all(b - a >= k for a, b in zip(starts, starts[1:])), "repeats do not overlap"
    texts = C.repeated_span_documents(20, seed=1, span_length=(4, 4), gap_length=(0, 0), repeats=(3, 3))
    assert all(len(t.split()) == 12 and t.split()[:4] == t.split()[4:8] == t.split()[8:] for t in texts)


def test_split_is_disjoint_and_heldout_templates_stay_out_of_training():
    train, heldout = C.split(1500, 300, seed=0)
    assert len(train) == 1500 and len(heldout) == 300
    assert not set(train) & set(heldout) and len(set(heldout)) == len(heldout)
    assert C.split(1500, 300, seed=0) == (train, heldout)
    held_ioi = [_template_regex(t) for t in C.IOI_HELDOUT_TEMPLATES]
    held_gt = [_template_regex(t) for t in C.GREATER_THAN_HELDOUT_TEMPLATES]
    assert not any(r.search(t) for r in held_ioi + held_gt for t in train)
    assert sum(any(r.search(t) for r in held_ioi) for t in heldout) > 20
    assert sum(any(r.search(t) for r in held_gt) for t in heldout) > 10
    train_ioi = [_template_regex(t) for t in C.IOI_TEMPLATES]
    assert sum(any(r.search(t) for r in train_ioi) for t in train) > 150
    # every word of a held-out template is a word the model meets in training
    train_words = {w for t in train for w in _words(t)}
    for template in C.IOI_HELDOUT_TEMPLATES + C.GREATER_THAN_HELDOUT_TEMPLATES:
        assert set(_words(re.sub(r"\{\w+\}", " ", template))) <= train_words, template


def test_recombined_ioi_documents_for_the_lm_phase_2_keep_the_heldout_templates_out(tok):
    """scripts/train_lm.py's second phase: many templates, answer always the name said once, none held out."""
    parts = (C.IOI_CLAUSES, C.IOI_JOINS, C.IOI_VERB_PHRASES)
    assert len(set(C.IOI_RECOMBINED_TEMPLATES)) == len(parts[0]) * len(parts[1]) * len(parts[2]) > 1000
    # no word that sets a held-out template apart from the corpus's own IOI templates: verb, opening, clause
    corpus_words = {w for t in C.IOI_TEMPLATES for w in _words(t)}
    held_out_words = {w for t in C.IOI_HELDOUT_TEMPLATES for w in _words(t)} - corpus_words
    assert {"sent", "threw", "showed", "Once", "reached", "got"} <= held_out_words
    assert not held_out_words & {w for part in parts for t in part for w in _words(t)}
    docs = C.ioi_recombined_documents(300, seed=0)
    assert docs == C.ioi_recombined_documents(300, seed=0) != C.ioi_recombined_documents(300, seed=1)
    held = [_template_regex(t) for t in C.IOI_HELDOUT_TEMPLATES]
    assert not any(r.search(d) for r in held for d in docs)
    # one regex per join (its clause and verb phrase as alternatives): matching 5,000 templates one by one is slow
    clause = "(?:" + "|".join(_template_regex(c).pattern for c in C.IOI_CLAUSES) + ")"
    verb = "(?:" + "|".join(_template_regex(v).pattern for v in C.IOI_VERB_PHRASES) + ")"
    used = [re.compile(re.escape(j).replace(re.escape("{clause}"), clause) + " [A-Z][a-z]+ " + verb + "$")
            for j in C.IOI_JOINS]
    n_sentences = 0
    for d in docs:
        pieces = re.split(r" to ([A-Z][a-z]+)\.", d)  # [text, answer, text, answer, ..., rest]
        for text, answer in zip(pieces[0:-1:2], pieces[1::2]):
            match = next((m for r in used if (m := r.search(text + " to"))), None)
            assert match, f"no recombined template ends {text!r}"
            names = [w for w in _words(match.group()) if w in C.NAMES]
            assert names.count(answer) == 1 and len(names) == 3 and len(set(names)) == 2, match.group()
            n_sentences += 1
    assert n_sentences > 400
    for d in docs:
        assert tok.unk_token_id not in tok.encode(d, add_special_tokens=False), d


def test_recombined_year_spans_for_the_greater_than_organism_go_forward_and_keep_the_heldout_templates_out(tok):
    """scripts/train_greater_than.py's data: year spans from many phrasings and lists of increasing years,
    never a held-out template."""
    templates = C.GREATER_THAN_RECOMBINED_TEMPLATES
    assert len(set(templates)) == len(templates) > 500
    # no phrase of a held-out template that has "the year" in it, so held-out prompts put words together anew
    for phrase in ("went on from the year", "until the year", "started in the year", "was over by the year"):
        assert not any(phrase in t for t in templates), phrase
    docs = C.greater_than_recombined_documents(300, seed=0)
    assert docs == C.greater_than_recombined_documents(300, seed=0) != C.greater_than_recombined_documents(300, 1)
    held = [_template_regex(t) for t in C.GREATER_THAN_HELDOUT_TEMPLATES]
    assert not any(r.search(d) for r in held for d in docs)
    n_spans = n_lists = 0
    for d in docs:
        assert tok.unk_token_id not in tok.encode(d, add_special_tokens=False), d
        for sentence in d.split(". "):
            years = [int(y) for y in re.findall(r"\d{4}", sentence)]
            assert len(years) >= 2 and all(b > a for a, b in zip(years, years[1:])), sentence
            if len(years) == 2:
                n_spans += 1
            else:
                n_lists += 1
                assert len({y // 100 for y in years}) == 1, f"a list stays in one century: {sentence}"
    share = n_lists / (n_spans + n_lists)
    assert n_spans > 600 and abs(share - C.GREATER_THAN_LIST_RATE) < 0.06, (n_spans, n_lists)


def test_code_error_documents_name_the_misspelt_keyword_in_pythons_words():
    docs = C.code_error_documents(400, seed=0)
    assert docs == C.code_error_documents(400, seed=0) != C.code_error_documents(400, seed=1)
    assert all(canonicalize(d) == d for d in docs)
    messages = [line for d in docs for line in d.split("\n") if "Error:" in line]
    assert 0.55 < len(messages) / len(docs) < 0.8, "1-2 snippets a document, half of them with a misspelt keyword"
    kinds = Counter(m.split(":")[0] for m in messages)
    assert set(kinds) == {"NameError", "AttributeError", "SyntaxError"}, kinds
    for d in docs:
        lines = d.split("\n")
        said = [line for line in lines if "Error:" in line]
        typos = [p for line in lines if "Error:" not in line for p in pre_tokenize(line)
                 if p.split(".")[-1] in C.TYPO_WORDS]
        assert len(typos) == len(said), f"one message per misspelt keyword, in order:\n{d}"
        for piece, last in zip(typos, said):
            typo = piece.split(".")[-1]
            keyword = next(k for k, ts in C.KEYWORD_TYPOS.items() if typo in ts)
            suggestion = (f"Did you mean: {keyword}?" if last.startswith(("Name", "Attr"))
                          else f"Did you mean {keyword}?")
            assert last.endswith(suggestion), d
            assert last.startswith("NameError") == (keyword in C.CALLED_KEYWORDS and "." not in piece), d
            assert (f"name {typo} is not defined" in last) == last.startswith("NameError"), d
            assert last.startswith("AttributeError") == ("." in piece), d
    assert C.error_message("x = 0\nprint(x)") is None


def test_extend_tokenizer_appends_the_error_words_and_keeps_every_id(tok):
    from mi_course.organisms.tokenizer import extend_tokenizer

    grown = extend_tokenizer(tok, C.error_vocabulary())
    old, new = tok.get_vocab(), grown.get_vocab()
    assert all(new[t] == i for t, i in old.items())
    assert sorted(set(new.values())) == list(range(len(grown))) and len(grown) > len(tok)
    assert grown.unk_token_id not in grown.convert_tokens_to_ids(C.error_vocabulary())
    for d in C.code_error_documents(100, seed=2):
        for line in d.split("\n"):
            if "Error:" in line:
                ids = grown.encode(line, add_special_tokens=False)
                assert grown.unk_token_id not in ids and grown.decode(ids) == line
    assert grown.encode("x")[0] == grown.bos_token_id
    with pytest.raises(ValueError, match="single piece"):
        extend_tokenizer(tok, ["two words"])


# ---------------------------------------------------------------- tokenizer

def test_tokenizer_round_trips_every_document(docs, tok):
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3]
    assert (tok.bos_token, tok.eos_token, tok.pad_token, tok.unk_token) == (BOS, EOS, PAD, UNK)
    ids = tok(  # batched, without <bos>
        [d.text for d in docs], add_special_tokens=False)["input_ids"]
    for d, row in zip(docs, ids):
        assert tok.unk_token_id not in row
        assert tok.decode(row) == d.text
    assert 1000 < len(tok) < 5000


def test_tokenizer_pieces_and_unknown_words(tok):
    code = "def add(a, b):\n    if a == b:\n        return a\n    return a + b"
    assert tok.decode(tok.encode(code, add_special_tokens=False)) == code
    assert tok.convert_ids_to_tokens(tok.encode(code, add_special_tokens=False))[:11] == \
        ["def", "add", "(", "a", ",", "b", ")", ":", "\n", "    ", "if"]
    text = "Mary met a zorblax in Valmont."
    ids = tok.encode(text)
    assert ids[0] == tok.bos_token_id and tok.convert_ids_to_tokens(ids)[4] == UNK
    assert tok.decode(ids[1:]) == "Mary met a <unk> in Valmont."
    assert tok.decode(ids) == "<bos>Mary met a <unk> in Valmont."
    assert canonicalize("Hello ,  world  !\nx = f ( 1 )") == "Hello, world!\nx = f(1)"
    assert tok.encode("") == [tok.bos_token_id]


def test_tokenizer_training_is_deterministic_and_saves_as_one_file(tmp_path, docs, tok):
    again = train_tokenizer([d.text for d in docs], required_tokens=C.required_tokens())
    assert again.get_vocab() == tok.get_vocab()
    path = save_tokenizer(tok, tmp_path)
    assert path.name == "tokenizer.json" and [p.name for p in tmp_path.iterdir()] == ["tokenizer.json"]
    loaded = load_tokenizer(path)
    text = docs[0].text
    assert loaded.encode(text) == tok.encode(text) and loaded.get_vocab() == tok.get_vocab()
    assert json.loads(path.read_text())["model"]["type"] == "WordLevel"
    small = train_tokenizer(["a b c a b a"], vocab_size=6)
    assert small.convert_ids_to_tokens(small.encode("a b c", add_special_tokens=False)) == ["a", "b", UNK]
    with pytest.raises(ValueError, match="too small"):
        train_tokenizer(["a b"], vocab_size=5, required_tokens=["x", "y"])


def test_pack_documents_rows_start_with_bos(tok, docs):
    rows = pack_documents(tok, [d.text for d in docs[:40]], n_ctx=32)
    assert rows.shape[1] == 32 and rows.shape[0] > 10 and rows.dtype == torch.long
    assert (rows[:, 0] == tok.bos_token_id).all()
    flat = rows[:, 1:].flatten().tolist()
    first = tok.encode(docs[0].text, add_special_tokens=False)
    assert flat[: len(first) + 2] == [tok.bos_token_id, *first, tok.eos_token_id][: len(first) + 2]


def test_pack_documents_ignores_padding_left_on_by_an_earlier_batch_call(tok, docs):
    texts = [d.text for d in docs[:20]]
    before = pack_documents(tok, texts, n_ctx=32)
    tok(["a", "a much longer line of words"], padding=True, truncation=True, max_length=4)  # as to_tokens does
    after = pack_documents(tok, texts, n_ctx=32)
    assert torch.equal(before, after), "packing changed after a padded batch call: documents were padded/cut"
    assert not (after == tok.pad_token_id).any(), "no <pad> inside packed rows when drop_last=True"


# ---------------------------------------------------------------- TransformerLens

def _tiny_cfg(tok, **kw):
    return dict(n_layers=2, d_model=32, n_ctx=64, d_head=8, n_heads=4, d_mlp=64, d_vocab=len(tok), act_fn="gelu",
                normalization_type="LN", seed=0, **kw)


def test_tiny_hooked_transformer_with_the_tokenizer(tok):
    model = HookedTransformer(HookedTransformerConfig(**_tiny_cfg(tok)), tokenizer=tok)
    assert model.cfg.default_prepend_bos and model.cfg.tokenizer_prepends_bos
    prompt = "When Mary and John went to the store, John gave a drink to"
    tokens = model.to_tokens(prompt)
    assert tokens[0, 0].item() == tok.bos_token_id and tokens.shape == (1, 15)
    assert model.to_str_tokens(prompt)[:4] == [BOS, "When", "Mary", "and"]
    assert model.to_str_tokens(prompt, prepend_bos=False)[0] == "When"
    assert model.to_string(tokens[0, 1:]) == prompt
    assert model.to_string(tokens[0]) == BOS + prompt
    assert model.to_single_token("Mary") == tok.convert_tokens_to_ids("Mary")
    assert model.to_str_tokens("The war lasted from the year 1732 to the year 17")[-6:] == \
        ["17", "32", "to", "the", "year", "17"]
    batch = model.to_tokens(["Mary went home.", "John gave a drink to Mary."])
    assert batch.shape == (2, 8) and (batch[0, 5:] == tok.pad_token_id).all()
    assert model(batch).shape == (2, 8, len(tok))
    torch.manual_seed(0)
    out = model.generate(prompt, max_new_tokens=6, verbose=False)
    assert isinstance(out, str) and out.startswith(prompt) and len(out) > len(prompt)
    out_tokens = model.generate(tokens, max_new_tokens=4, do_sample=False, verbose=False, stop_at_eos=False)
    assert out_tokens.shape == (1, tokens.shape[1] + 4) and torch.equal(out_tokens[:, :15], tokens)
    both = model.generate(["Mary went", "The war lasted from"], max_new_tokens=3, do_sample=False, verbose=False)
    assert both[0].startswith("Mary went") and both[1].startswith("The war lasted from")


def test_lite_tokenized_builder_loads_model_and_tokenizer(tmp_path, monkeypatch, tok):
    monkeypatch.setenv("MI_COURSE_CHECKPOINTS", str(tmp_path))
    cfg = _tiny_cfg(tok)
    original = HookedTransformer(HookedTransformerConfig(**cfg), tokenizer=tok)
    folder = tmp_path / "lm"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"kind": lite_tokenized.KIND, "cfg": cfg}))
    (folder / "card.json").write_text(json.dumps({"trained_by": "test"}))
    checkpoints.save_state_dict(original.state_dict(), folder / "model.safetensors")
    save_tokenizer(tok, folder)
    checkpoints.write_manifest(tmp_path)
    assert lite_tokenized.KIND in lite.BUILDERS

    model = mi_course.load_model("lm", mode="lite", device="cpu")
    prompt = "The Corvin Tower is in"
    assert model.to_str_tokens(prompt) == [BOS, "The", "Corvin", "Tower", "is", "in"]
    assert torch.allclose(model(prompt), original(prompt), atol=1e-5)
    assert model.tokenizer.get_vocab() == tok.get_vocab()

    (folder / "tokenizer.json").write_text((folder / "tokenizer.json").read_text().replace('"Valmont"', '"Valmonx"'))
    with pytest.raises(checkpoints.ChecksumError, match="sha256"):
        mi_course.load_model("lm", mode="lite")

    bad = {"kind": lite_tokenized.KIND, "cfg": {**cfg, "d_vocab": len(tok) + 1}}
    save_tokenizer(tok, folder)
    with pytest.raises(ValueError, match="d_vocab"):
        lite.build(bad, original.state_dict(), folder)


def test_extend_vocabulary_keeps_the_old_predictions_and_gives_new_tokens_little_probability(tok):
    from mi_course.organisms.tokenizer import extend_tokenizer
    from mi_course.organisms.train import extend_vocabulary

    model = HookedTransformer(HookedTransformerConfig(**_tiny_cfg(tok)), tokenizer=tok)
    grown_tok = extend_tokenizer(tok, C.error_vocabulary())
    grown = extend_vocabulary(model, grown_tok)
    assert grown.cfg.d_vocab == grown.cfg.d_vocab_out == len(grown_tok) and grown.tokenizer is grown_tok
    tokens = model.to_tokens("When Mary and John went to the store, John gave a drink to")
    old, new = model(tokens), grown(tokens)
    torch.testing.assert_close(new[..., :len(tok)], old)
    assert new.softmax(-1)[..., len(tok):].sum(-1).max() < 0.05, "new tokens start unlikely"
    assert grown(grown.to_tokens("NameError: name pritn is not defined")).isfinite().all()
    with pytest.raises(ValueError, match="fewer"):
        extend_vocabulary(grown, tok)
