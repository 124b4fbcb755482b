"""Phase 3 of the lite lm (mi_course.organisms.train.train_token_marker) on a tiny random transformer: only the
marked tokens' embedding rows move, so a text without them runs exactly as before; a linear read-out after
block 0 then tells the marked tokens from the rest; bad arguments get clear errors."""

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from mi_course.organisms.train import train_token_marker

MARKED = [3, 7, 11]
HOOK = "blocks.1.hook_resid_pre"


def tiny_model():
    cfg = HookedTransformerConfig(n_layers=2, d_model=32, n_ctx=32, d_head=8, n_heads=4, d_mlp=64, d_vocab=40,
                                  act_fn="gelu", normalization_type="LN", seed=0)
    return HookedTransformer(cfg)


def rows(n=64, seed=0):
    return torch.randint(0, 40, (n, 32), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def marked():
    before = tiny_model()
    after = tiny_model()
    history, direction = train_token_marker(after, rows(), MARKED, HOOK, steps=150, batch_size=8, lr=0.05,
                                            seed=0, log=lambda *a: None)
    return before, after, history, direction


def test_only_the_marked_rows_move(marked):
    before, after, _, _ = marked
    old, new = before.state_dict(), after.state_dict()
    for name, value in old.items():
        if name != "embed.W_E":
            assert torch.equal(value, new[name]), f"{name} changed: every weight but the embedding is frozen"
    others = torch.ones(40, dtype=torch.bool)
    others[MARKED] = False
    assert torch.equal(old["embed.W_E"][others], new["embed.W_E"][others]), "an unmarked token's row changed"
    assert not torch.equal(old["embed.W_E"][MARKED], new["embed.W_E"][MARKED]), "the marked rows did not move"
    assert all(p.requires_grad for p in after.parameters()), "the model's parameters are left as they were found"


def test_a_text_without_marked_tokens_runs_exactly_as_before(marked):
    before, after, _, _ = marked
    clean = rows(8, seed=1)
    clean[torch.isin(clean, torch.tensor(MARKED))] = 0
    with torch.no_grad():
        assert torch.equal(before(clean), after(clean))


def test_the_read_out_after_block_0_finds_the_marked_tokens(marked):
    before, after, history, direction = marked
    assert direction.shape == (32,) and torch.isclose(direction.norm(), torch.tensor(1.0))
    assert history[-1]["marker_loss"] < history[0]["marker_loss"]
    test = rows(64, seed=2)
    is_marked = torch.isin(test[:, 1:], torch.tensor(MARKED)).reshape(-1)
    n = int(is_marked.sum())
    for model, expect in ((after, lambda p: p >= 0.95), (before, lambda p: p < 0.5)):
        with torch.no_grad():
            _, cache = model.run_with_cache(test, names_filter=HOOK)
        score = (cache[HOOK][:, 1:] @ direction).reshape(-1)
        precision = is_marked[score.topk(n).indices].float().mean().item()
        assert expect(precision), f"precision at n of the read-out: {precision:.2f}"


def test_bad_arguments_are_named():
    model = tiny_model()
    with pytest.raises(ValueError, match="ids of the vocabulary"):
        train_token_marker(model, rows(), [40], HOOK, steps=1)
    with pytest.raises(ValueError, match="ids of the vocabulary"):
        train_token_marker(model, rows(), [], HOOK, steps=1)
    with pytest.raises(ValueError, match="none of the rows"):
        train_token_marker(model, torch.zeros(4, 32, dtype=torch.long), MARKED, HOOK, steps=1)
    with pytest.raises(ValueError, match=r"rows must be \[rows, pos\]"):
        train_token_marker(model, rows()[0], MARKED, HOOK, steps=1)
    with pytest.raises(ValueError, match="positive int"):
        train_token_marker(model, rows(), MARKED, HOOK, steps=0)
    with pytest.raises(ValueError, match="one of the model's hooks"):
        train_token_marker(model, rows(), MARKED, "blocks.9.hook_resid_pre", steps=1)
