"""mi_course.saes.steering: the hooks add and clamp what they say, generation is seeded and hooked at every
step, and the measures (mention share, the plain model's loss) behave on texts whose answer is known."""

import pytest
import torch

import mi_course
from mi_course import saes
from mi_course.models.registry import lite_shipped
from mi_course.saes.steering import clamp_hook, continuation_loss, generate_with_steering, mention_share, steering_hook

pytestmark = pytest.mark.skipif(not lite_shipped("lm"), reason="the lite lm is not shipped")


@pytest.fixture(scope="module")
def lm():
    torch.set_num_threads(1)
    return mi_course.load_model("lm", mode="lite", device="cpu")


def test_steering_hook_adds_alpha_times_the_direction_from_start_on():
    act = torch.randn(2, 5, 4)
    direction = torch.tensor([1.0, 0.0, -2.0, 0.5])
    out = steering_hook(direction, alpha=3.0, start=2)(act)
    torch.testing.assert_close(out[:, :2], act[:, :2])
    torch.testing.assert_close(out[:, 2:], act[:, 2:] + 3.0 * direction)
    assert not torch.equal(out, act), "the input is left as it was (no in-place edit)"
    torch.testing.assert_close(steering_hook(direction, 1.0)(act), act + direction)


def test_steering_hook_rejects_bad_input():
    with pytest.raises(ValueError, match=r"vector \[d_model\]"):
        steering_hook(torch.ones(2, 4), 1.0)
    with pytest.raises(ValueError, match="start"):
        steering_hook(torch.ones(4), 1.0, start=-1)
    with pytest.raises(ValueError, match="dimensions"):
        steering_hook(torch.ones(3), 1.0)(torch.zeros(1, 2, 4))


def test_clamp_hook_sets_the_feature_and_nothing_else():
    d_in, d_sae = 8, 4
    sae = saes.ReLUSAE(d_in, d_sae)
    q, _ = torch.linalg.qr(torch.randn(d_in, d_sae, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():  # orthonormal decoder rows read back exactly by the encoder
        sae.W_dec.copy_(q.T)
        sae.W_enc.copy_(q)
    act = torch.randn(3, 6, d_in)
    out = clamp_hook(sae, feature=2, value=5.0, start=1)(act)
    after, before = sae.encode(out), sae.encode(act)
    active = before[:, 1:, 2] > 0  # there the encoder reads the clamped value back exactly
    assert active.any() and (~active).any()
    torch.testing.assert_close(after[:, 1:, 2][active], torch.full((int(active.sum()),), 5.0))
    # where it was off, the whole value is added along the decoder row
    torch.testing.assert_close((out - act)[:, 1:][~active],
                               5.0 * sae.W_dec[2].detach().expand(int((~active).sum()), -1))
    torch.testing.assert_close(after[:, :1], before[:, :1])
    torch.testing.assert_close(after[..., [0, 1, 3]], before[..., [0, 1, 3]])
    with pytest.raises(ValueError, match="feature"):
        clamp_hook(sae, feature=4, value=1.0)


def test_generation_is_seeded_and_the_hook_acts_at_every_step(lm):
    prompt = "The"
    a = generate_with_steering(lm, prompt, None, None, n=4, max_new_tokens=8, seed=3)
    assert a == generate_with_steering(lm, prompt, None, None, n=4, max_new_tokens=8, seed=3)
    assert a != generate_with_steering(lm, prompt, None, None, n=4, max_new_tokens=8, seed=4)
    hook_name = f"blocks.{lm.cfg.n_layers - 1}.hook_resid_post"
    zero = steering_hook(torch.ones(lm.cfg.d_model), 0.0)
    assert generate_with_steering(lm, prompt, hook_name, zero, n=4, max_new_tokens=8, seed=3) == a
    # pushing the last residual stream along the unembedding of "bridge" makes every step write it
    push = steering_hook(lm.W_U[:, lm.to_single_token("bridge")], 50.0)
    texts = generate_with_steering(lm, prompt, hook_name, push, n=4, max_new_tokens=8, seed=3)
    assert all(t.split().count("bridge") >= 6 for t in texts), texts
    with pytest.raises(ValueError, match="temperature"):
        generate_with_steering(lm, prompt, None, None, temperature=0)


def test_mention_share_counts_whole_words_case_insensitively():
    texts = ["The Bridge was red.", "bridges are long", "a bridge", "nothing here"]
    assert mention_share(texts, ["bridge"]) == 0.5
    assert mention_share(texts, ["bridge", "bridges"]) == 0.75
    assert mention_share([], ["bridge"]) == 0.0


def test_the_plain_models_loss_is_lower_on_its_own_text_than_on_shuffled_words_or_noise(lm):
    prompt = "The Golden Gate Bridge"
    own = generate_with_steering(lm, prompt, None, None, n=8, max_new_tokens=12, seed=0, temperature=0.7)
    rng = torch.Generator().manual_seed(0)
    shuffled = [" ".join(t.split()[i] for i in torch.randperm(len(t.split()), generator=rng)) for t in own
                if len(t.split()) > 3]
    vocab = list(lm.tokenizer.get_vocab())
    noise = [" ".join(vocab[int(i)] for i in torch.randint(4, len(vocab), (12,), generator=rng)) for _ in own]
    own_loss = continuation_loss(lm, prompt, own)
    assert (own_loss + 2 < continuation_loss(lm, prompt, shuffled)
            and own_loss + 2 < continuation_loss(lm, prompt, noise))
