"""A word-level tokenizer for the lite language models, trained locally with the ``tokenizers`` library.

One file, ``tokenizer.json``, holds everything (vocabulary, pre-tokenizer, decoder, the ``<bos>`` template);
:func:`load_tokenizer` wraps it as a ``transformers.PreTrainedTokenizerFast`` that TransformerLens accepts:

    tok = train_tokenizer(texts)                        # or load_tokenizer("…/tokenizer.json")
    model = HookedTransformer(cfg, tokenizer=tok)       # cfg.d_vocab == len(tok), cfg.default_prepend_bos=True
    model.to_str_tokens("The war lasted from the year 1732 to the year 17")
    # ['<bos>', 'The', 'war', 'lasted', 'from', 'the', 'year', '17', '32', 'to', 'the', 'year', '17']

Special tokens (fixed ids): ``<pad>`` 0, ``<unk>`` 1, ``<bos>`` 2, ``<eos>`` 3.

How text is cut into tokens (the pre-tokenizer, one regex, :data:`TOKEN_PATTERN`), in this order:

* ``"\\n"``: every newline is a token of its own;
* ``"    "``: every run of four spaces is an indentation token (Python code; prose has no such runs);
* words: an ASCII letter or ``_`` followed by letters, digits and ``_``; dotted names stay whole
  (``items.append``, ``math.sqrt``, ``self.count``);
* numbers: runs of digits split into **two-digit groups aligned from the right**: ``1732`` -> ``17`` ``32``,
  ``1905`` -> ``19`` ``05``, ``100`` -> ``1`` ``00``, ``7`` -> ``7``. A year is the century token followed by
  a two-digit token, as in GPT-2 ("17" "32"), so a greater-than prompt ends with the century and the answer
  is one of the 100 tokens ``"00"`` … ``"99"``;
* operators ``== != <= >= += -= ** // ->``;
* any other single character that is not whitespace (punctuation, symbols: ``. , : ; ? ! ( ) [ ] + - * / % = < > #``).

Other whitespace (single spaces, tabs, carriage returns) only separates tokens and is dropped. There is no
lower-casing (``The`` and ``the`` are two tokens) and no leading-space marker: lite tokens are bare words,
``"Mary"`` where GPT-2 has ``" Mary"``.

Decoding joins tokens with one space, then: no space around newlines; indentation tokens keep exactly their
four spaces; no space before ``. , : ; ? ! ) ]`` nor after ``( [``; no space before ``(`` or ``[`` that follows
a word or a digit (calls and indexing: ``f(x)``, ``xs[0]``); the digit groups of a number are glued back
(``17`` ``32`` -> ``1732``); ``<bos>`` and ``<eos>`` are glued to their neighbours like GPT-2's
``<|endoftext|>``. Text written in this *canonical form* (:func:`canonicalize`) round-trips exactly:
``tok.decode(tok.encode(text, add_special_tokens=False)) == text``. Every document of
:mod:`mi_course.organisms.corpus` is canonical. Words missing from the vocabulary become ``<unk>``.

TransformerLens settings (checked by tests/test_lite_corpus.py, TransformerLens 3.9):

* build with ``HookedTransformer(cfg, tokenizer=tok)`` and leave ``cfg.tokenizer_name`` unset (``None``):
  a name would make TransformerLens download a tokenizer from the Hugging Face hub;
* ``cfg.d_vocab = len(tok)`` (or ``-1``: TransformerLens then infers it from the vocabulary), and
  ``cfg.default_prepend_bos = True`` (the default), so ``to_tokens`` starts every row with ``<bos>`` like GPT-2;
* the wrapper has ``add_bos_token=True``. ``set_tokenizer`` then keeps it as it is (with ``add_bos_token``
  false it would try ``AutoTokenizer.from_pretrained(name_or_path)``, which fails offline for a tokenizer
  built in memory) and sets ``cfg.tokenizer_prepends_bos = True`` because ``tok.encode("") == [<bos>]``;
  ``prepend_bos=False`` strips that ``<bos>`` again. Padding is on the right with ``<pad>`` (id 0, never
  ``<bos>``), so attention masks from padding are exact;
* ``generate`` stops at ``<eos>`` (``tok.eos_token_id``);
* training data: :func:`pack_documents` writes rows ``<bos> doc <eos> <bos> doc <eos> …`` cut to ``n_ctx``
  with ``<bos>`` at position 0 of every row, so that prompts tokenized with the default ``prepend_bos=True``
  look like the start of a training document.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)  # ids 0, 1, 2, 3
INDENT = "    "
NAME = "mi-course-word-level"

TOKEN_PATTERN = (
    r"\n"                                                     # newline
    r"| {4}"                                                  # one level of indentation
    r"|[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"   # word or dotted name
    r"|\d{1,2}(?=(?:\d\d)*(?!\d))"                            # two-digit groups, aligned from the right
    r"|==|!=|<=|>=|\+=|-=|\*\*|//|->"                         # two-character operators
    r"|[^\sA-Za-z0-9_]"                                       # any other visible character
)


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    # invert=True: the pattern matches the tokens; what lies between them (whitespace) is removed
    return pre_tokenizers.Split(Regex(TOKEN_PATTERN), behavior="removed", invert=True)


def _decoder() -> decoders.Decoder:
    return decoders.Sequence([
        # join with single spaces (no token of this tokenizer starts with "##")
        decoders.WordPiece(prefix="##", cleanup=False),
        decoders.Fuse(),
        decoders.Replace(" \n", "\n"),
        decoders.Replace("\n ", "\n"),
        decoders.Replace(INDENT + " ", INDENT),                         # indentation keeps its 4 spaces
        decoders.Replace(Regex(r" (?=[.,:;?!)\]])"), ""),
        decoders.Replace(Regex(r"(?<=[(\[]) "), ""),
        decoders.Replace(Regex(r"(?<=[A-Za-z0-9_]) (?=[(\[])"), ""),
        decoders.Replace(Regex(r"(?<=\d) (?=\d)"), ""),                  # 17 32 -> 1732
        decoders.Replace(BOS + " ", BOS),
        decoders.Replace(" " + EOS, EOS),
        decoders.Replace(EOS + " ", EOS),
    ])


_PRE = _pre_tokenizer()
_DEC = _decoder()


def pre_tokenize(text: str) -> list[str]:
    """The pieces the tokenizer sees (before the vocabulary lookup): ``"f(x)"`` -> ``["f", "(", "x", ")"]``."""
    return [piece for piece, _ in _PRE.pre_tokenize_str(text)]


def detokenize(pieces: Sequence[str]) -> str:
    """Join token strings the way the tokenizer decodes them."""
    return _DEC.decode(list(pieces))


def canonicalize(text: str) -> str:
    """The canonical spelling of ``text``: the text that tokenizing and decoding gives back (spacing only)."""
    return detokenize(pre_tokenize(text))


def _backend(vocab: dict[str, int] | None = None) -> Tokenizer:
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK) if vocab else models.WordLevel(unk_token=UNK))
    tok.pre_tokenizer = _pre_tokenizer()
    tok.decoder = _decoder()
    return tok


def wrap(backend: Tokenizer) -> PreTrainedTokenizerFast:
    """A ``tokenizers.Tokenizer`` as the ``PreTrainedTokenizerFast`` TransformerLens expects (``<bos>`` first)."""
    backend = Tokenizer.from_str(backend.to_str())
    backend.no_truncation()
    backend.no_padding()
    for i, special in enumerate(SPECIAL_TOKENS):
        if backend.token_to_id(special) != i:
            raise ValueError(f"{special} must have id {i}, found {backend.token_to_id(special)}")
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, SPECIAL_TOKENS.index(BOS))])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        add_bos_token=True, add_eos_token=False, padding_side="right", clean_up_tokenization_spaces=False,
        model_max_length=1 << 20, name_or_path=NAME,  # TransformerLens reads init_kwargs["name_or_path"]
    )


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 1,
                    required_tokens: Iterable[str] = ()) -> PreTrainedTokenizerFast:
    """Train a word-level vocabulary on ``texts``: the special tokens, then pieces by falling frequency.

    ``required_tokens`` (for example :func:`mi_course.organisms.corpus.required_tokens`: every name, city and
    number token) are always in the vocabulary, however small the corpus. Pieces beyond ``vocab_size`` or
    rarer than ``min_frequency`` map to ``<unk>``. Training is deterministic (ties broken alphabetically).
    """
    required = list(dict.fromkeys(required_tokens))
    for token in required:
        if pre_tokenize(token) != [token]:
            raise ValueError(f"required token {token!r} is not a single piece: {pre_tokenize(token)}")
    backend = _backend()
    trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    extra = [" ".join(required)] * max(min_frequency, 1) if required else []
    backend.train_from_iterator(_chain(texts, extra), trainer=trainer)
    missing = [t for t in required if backend.token_to_id(t) is None]
    if missing:
        raise ValueError(f"vocab_size={vocab_size} is too small for the {len(required)} required tokens; "
                         f"missing {missing[:10]}")
    return wrap(backend)


def extend_tokenizer(tokenizer: PreTrainedTokenizerFast, tokens: Iterable[str]) -> PreTrainedTokenizerFast:
    """``tokenizer`` with the ``tokens`` it lacks appended to its vocabulary (ids ``len(tokenizer)``, ...): every
    old token keeps its id, so a model trained with it keeps working once its embedding grows
    (:func:`mi_course.organisms.train.extend_vocabulary`)."""
    vocab = tokenizer.get_vocab()
    new = [t for t in dict.fromkeys(tokens) if t not in vocab]
    for token in new:
        if pre_tokenize(token) != [token]:
            raise ValueError(f"token {token!r} is not a single piece: {pre_tokenize(token)}")
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    spec["model"]["vocab"] = {**spec["model"]["vocab"], **{t: len(vocab) + i for i, t in enumerate(new)}}
    return wrap(Tokenizer.from_str(json.dumps(spec)))


def _chain(texts: Iterable[str], extra: list[str]):
    yield from texts
    yield from extra


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, path: str | Path) -> Path:
    """Write the tokenizer as one ``tokenizer.json`` (``path`` may be the file or its folder)."""
    path = Path(path)
    if path.suffix != ".json":
        path = path / "tokenizer.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    # a copy without the truncation / padding state that calls like tok(..., padding=True) leave behind,
    # so the file (and its sha256 in the manifest) depends on the vocabulary only
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    backend.save(str(path))
    return path


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """A tokenizer saved by :func:`save_tokenizer` (the file or its folder), wrapped for TransformerLens."""
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    return wrap(Tokenizer.from_file(str(path)))


def pack_documents(tokenizer: PreTrainedTokenizerFast, documents: Iterable[str], n_ctx: int,
                   drop_last: bool = True) -> torch.Tensor:
    """Training rows ``[rows, n_ctx]``: the stream ``<bos> doc <eos> <bos> doc <eos> …`` cut into pieces of
    ``n_ctx - 1`` tokens, each row starting with ``<bos>`` (a row that starts at a document start therefore
    begins ``<bos> <bos>``). The last partial row is dropped, or padded with ``<pad>`` when ``drop_last=False``.
    """
    if n_ctx < 2:
        raise ValueError(f"n_ctx must be at least 2, got {n_ctx}")
    bos, eos, pad = (tokenizer.convert_tokens_to_ids(t) for t in (BOS, EOS, PAD))
    stream: list[int] = []
    # Through the wrapper with padding and truncation off: once `model.to_tokens` has run, the backend
    # tokenizer keeps padding/truncation switched on, and calling it directly would pad every document.
    encoded = tokenizer(list(documents), add_special_tokens=False, padding=False, truncation=False)["input_ids"]
    for ids in encoded:
        stream += [bos, *ids, eos]
    width = n_ctx - 1
    n_rows = len(stream) // width if drop_last else -(-len(stream) // width)
    stream += [pad] * (n_rows * width - len(stream))
    body = torch.tensor(stream[: n_rows * width], dtype=torch.long).view(n_rows, width)
    return torch.cat([torch.full((n_rows, 1), bos, dtype=torch.long), body], dim=1)
