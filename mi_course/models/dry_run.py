"""The dry run's full models: the real architectures at random weights, built offline.

With ``MI_COURSE_DRY_RUN=1`` the full-mode loaders of :mod:`mi_course.models.full` build these instead of
downloading, so every full-mode notebook cell can run on a machine without a network (``make dry-run``):

* TransformerLens models from the configs in ``full_configs/`` (written by ``scripts/write_full_configs.py``
  from TransformerLens's own loading code), initialised as TransformerLens initialises a new model, then
  processed as ``from_pretrained`` processes weights (folded LayerNorm, centred writing weights and unembed);
* lucent's ``InceptionV1(pretrained=False)`` and the torchvision classifiers (AlexNet, VGG19, ResNet-50) with
  ``weights=None``;
* a SAELens SAE of the release's real shape, hook and metadata.

The real tokenizers cannot be had offline, so each HookedTransformer gets a **stand-in**: a byte-level BPE
(GPT-2's pre-tokenizer, so ``" Mary"`` is one token with its leading space) of the real vocabulary size and
special-token ids, trained on the course's generated corpus and its notebooks' text. Ids the training does
not reach are filler tokens (``<filler_123>``) that no text encodes to. Every build is seeded, so a dry run
gives the same models each time; the seeding leaves the caller's random state alone.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import torch
from torch import nn

CONFIG_DIR = Path(__file__).resolve().parent / "full_configs"
SEED = 0


def full_config(name: str) -> dict:
    """The JSON in ``full_configs/<name>.json`` (a HookedTransformer's ``cfg`` and ``tokenizer``, or an SAE's)."""
    path = CONFIG_DIR / f"{name}.json"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.json")))
        raise KeyError(f"no dry-run config {name!r} in {CONFIG_DIR}; known: {known}")
    return json.loads(path.read_text())


def _training_text() -> list[str]:
    """Text for the stand-in tokenizers: corpus documents, the lessons' sources, and every word in them
    once more after a space, so that each word becomes a single GPT-style token (``" word"``)."""
    from mi_course.organisms.corpus import generate_corpus

    texts = generate_corpus(1000, seed=SEED)
    try:
        from mi_course.paths import repo_root

        texts += [p.read_text() for p in sorted((repo_root() / "notebooks" / "src").glob("*.py"))]
    except FileNotFoundError:  # an installed package without the notebooks: the corpus alone
        pass
    words = sorted({w for text in texts for w in re.findall(r"[A-Za-z]+", text)})
    return texts + [" " + " ".join(words)] * 2


@cache
def _stand_in_backend(vocab_size: int, specials: tuple[tuple[str, int], ...], split_digits: bool):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    def bare(model):
        tok = Tokenizer(model)
        byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
        # digits one by one where the real tokenizer does; else in pairs, as GPT-2 spells years ("17", "32"),
        # which the greater-than prompts need (a trained BPE would merge a year into one token)
        digits = (pre_tokenizers.Digits(individual_digits=True) if split_digits
                  else pre_tokenizers.Split(Regex(r" ?[0-9]{2}"), behavior="isolated"))
        tok.pre_tokenizer = pre_tokenizers.Sequence([digits, byte_level])
        tok.decoder = decoders.ByteLevel()
        return tok

    trained = bare(models.BPE())
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(specials), min_frequency=1, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    trained.train_from_iterator(_training_text(), trainer=trainer)
    learned = json.loads(trained.to_str())["model"]
    # Lay the vocabulary out like the real one: special tokens at their ids, learned tokens in order around
    # them, filler up to the real size (reachable by no merge, so no text encodes to them).
    free = (i for i in range(vocab_size) if i not in {i for _, i in specials})
    vocab = {token: next(free) for token, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1])}
    vocab.update({f"<filler_{i}>": i for i in free})
    vocab.update(dict(specials))
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in learned["merges"]]
    tok = bare(models.BPE(vocab=vocab, merges=merges))
    tok.add_special_tokens([token for token, _ in specials])
    return tok.to_str()


def stand_in_tokenizer(spec: dict):
    """A ``PreTrainedTokenizerFast`` shaped like the real tokenizer ``spec`` describes (see ``full_configs``):
    its size, its special tokens at their ids, ``add_bos_token`` on as TransformerLens sets it."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    specials = tuple(sorted(spec["special_tokens"].items(), key=lambda kv: kv[1]))
    backend = Tokenizer.from_str(_stand_in_backend(spec["vocab_size"], specials, spec.get("split_digits", False)))
    bos = spec["bos"]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, spec["special_tokens"][bos])])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=bos, eos_token=spec["eos"], unk_token=spec["unk"],
        pad_token=spec["pad"], add_bos_token=True, add_eos_token=False, padding_side="right",
        clean_up_tokenization_spaces=False, model_max_length=1 << 20,
        name_or_path=f"stand-in for {spec['name']}",  # TransformerLens reads init_kwargs["name_or_path"]
    )


def _seeded(build):
    """Run ``build()`` with torch seeded, without touching the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        return build()


def hooked_transformer(name: str, fold_ln: bool = True, center_writing_weights: bool = True,
                       center_unembed: bool = True, fold_value_biases: bool = True, dtype=torch.float32):
    """A TransformerLens ``HookedTransformer`` of the real architecture ``name`` (``gpt2-small``,
    ``attn-only-1l``, ...) at random weights, with a stand-in tokenizer of the real size. The arguments are
    ``HookedTransformer.from_pretrained``'s, with its defaults."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    spec = full_config(name)
    cfg = {**spec["cfg"], "device": "cpu", "dtype": dtype}  # load_model moves it to the course device
    if not fold_ln:  # the files hold from_pretrained's default: LayerNorm folded into the next weights (LNPre)
        cfg["normalization_type"] = cfg["normalization_type"].removesuffix("Pre")
    del fold_value_biases  # value biases start at zero: folding them into b_O changes nothing

    def build():
        model = HookedTransformer(HookedTransformerConfig(**cfg), tokenizer=stand_in_tokenizer(spec["tokenizer"]))
        model.process_weights_(fold_ln=False, center_writing_weights=center_writing_weights,
                               center_unembed=center_unembed)
        return model

    return _seeded(build)


def inceptionv1(**kwargs) -> nn.Module:
    from lucent.modelzoo.inceptionv1 import InceptionV1

    return _seeded(lambda: InceptionV1(pretrained=False, **kwargs))


def torchvision_model(name: str, **kwargs) -> nn.Module:
    """A torchvision classifier (``alexnet``, ``vgg19``, ``resnet50``, ...) with ``weights=None``."""
    import torchvision.models

    return _seeded(lambda: getattr(torchvision.models, name)(weights=None, **kwargs))


def saelens_sae(release: str = "gpt2-small-res-jb", sae_id: str = "blocks.8.hook_resid_pre", **kwargs):
    """A SAELens SAE of the release's real shape, reading ``sae_id``'s hook, at random weights."""
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    spec = full_config(f"sae-{release}")
    if sae_id not in spec["sae_ids"]:  # SAELens's own list for the release
        raise KeyError(f"{release} has no SAE {sae_id!r}; ids: {', '.join(spec['sae_ids'])}")
    cfg = StandardSAEConfig(
        d_in=spec["d_in"], d_sae=spec["d_sae"], apply_b_dec_to_input=spec["apply_b_dec_to_input"],
        normalize_activations=spec["normalize_activations"],
        metadata=SAEMetadata(hook_name=sae_id, **spec["metadata"]))
    return _seeded(lambda: StandardSAE(cfg, **kwargs))
