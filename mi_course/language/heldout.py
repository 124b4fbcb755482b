"""Held-out text for measurements: corpus documents the lite models never saw, packed into rows.

Lessons measure lenses, losses and features on these rows rather than on the text they were found with.
"""

from __future__ import annotations

import torch
from jaxtyping import Int


def heldout_rows(model, n_rows: int = 16, seq_len: int = 64, seed: int = 0) -> Int[torch.Tensor, "rows seq_len"]:
    """Rows of held-out corpus text (``corpus.generate_corpus(..., split="heldout")``) for measuring a lens:
    documents joined as ``<bos> doc <eos> <bos> doc ...`` and cut into rows of ``seq_len`` tokens that each
    start with BOS, the layout of :func:`mi_course.organisms.tokenizer.pack_documents` (GPT-2 has one
    ``<|endoftext|>`` between documents, its BOS and EOS being the same token). Works with either tokenizer.
    """
    from mi_course.organisms import corpus

    tok = model.tokenizer
    bos, eos = tok.bos_token_id, tok.eos_token_id
    width = seq_len - 1
    n_docs = 8 * n_rows
    while True:
        docs = corpus.generate_corpus(n_docs, seed=seed, split="heldout")
        # padding and truncation off explicitly: TransformerLens's to_tokens leaves them on in the tokenizer
        encoded = tok(docs, add_special_tokens=False, padding=False, truncation=False)["input_ids"]
        stream = []
        for ids in encoded:
            stream += [bos, *ids] + ([eos] if eos != bos else [])
        if len(stream) // width >= n_rows or n_docs > 1 << 16:
            break
        n_docs *= 2
    n = min(n_rows, len(stream) // width)
    body = torch.tensor(stream[: n * width], dtype=torch.long).view(n, width)
    return torch.cat([torch.full((n, 1), bos, dtype=torch.long), body], dim=1).to(model.cfg.device)
