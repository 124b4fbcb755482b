"""mi_course.saes: the SAE variants, activations, the training loop, metrics and SAELens interop.

Expected values come from independent computations (plain torch written out here, TransformerLens's own
loss, SAELens's own classes), never from the code under test.
"""

import math

import pytest
import torch
import torch.nn.functional as F

import mi_course
from mi_course import saes
from mi_course.organisms import corpus
from mi_course.organisms.tokenizer import pack_documents

D_IN, D_SAE = 12, 48
HOOK = "blocks.1.hook_resid_pre"


def randomize_(sae, seed=0):
    """Random biases (and thresholds) so that a test sees every parameter at work."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        sae.b_enc.copy_(0.3 * torch.randn(sae.d_sae, generator=gen))
        sae.b_dec.copy_(0.5 * torch.randn(sae.d_in, generator=gen))
        sae.W_dec.mul_(1 + torch.rand(sae.d_sae, 1, generator=gen))  # rows of different norms
        if isinstance(sae, saes.JumpReLUSAE):
            sae.threshold.copy_(0.5 * torch.rand(sae.d_sae, generator=gen))
        if isinstance(sae, saes.BatchTopKSAE):
            sae.threshold.fill_(0.4)
            sae.threshold_updates.fill_(1)
    return sae


def make(name, d_in=D_IN, d_sae=D_SAE, seed=0, **kwargs):
    defaults = {"topk": {"k": 4}, "batchtopk": {"k": 4}, "ortsae": {"k": 4}}
    return saes.VARIANTS[name](d_in, d_sae, seed=seed, **{**defaults.get(name, {}), **kwargs})


def identity_pre(sae):
    """Weights with pre == x (d_in == d_sae): W_enc = I, biases 0."""
    with torch.no_grad():
        sae.W_enc.copy_(torch.eye(sae.d_in))
        sae.W_dec.copy_(torch.eye(sae.d_in))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def sparse_data(n=4096, d_in=D_IN, n_features=32, p=0.08, seed=0):
    """Toy activations: sparse non-negative combinations of random unit directions."""
    gen = torch.Generator().manual_seed(seed)
    directions = F.normalize(torch.randn(n_features, d_in, generator=gen), dim=-1)
    coefficients = torch.rand(n, n_features, generator=gen) * (torch.rand(n, n_features, generator=gen) < p)
    return coefficients @ directions + 0.01 * torch.randn(n, d_in, generator=gen)


# ------------------------------------------------------------------------------------------ interface


@pytest.mark.parametrize("name", sorted(saes.VARIANTS))
def test_every_variant_has_the_same_interface_and_shapes(name):
    sae = make(name)
    assert sae.W_enc.shape == (D_IN, D_SAE) and sae.W_dec.shape == (D_SAE, D_IN)
    assert sae.b_enc.shape == (D_SAE,) and sae.b_dec.shape == (D_IN,)
    assert torch.allclose(sae.W_dec.norm(dim=-1), torch.ones(D_SAE)), "decoder rows should start at unit norm"
    x = torch.randn(3, 5, D_IN)
    sae.eval()
    acts = sae.encode(x)
    assert acts.shape == (3, 5, D_SAE) and (acts >= 0).all()
    assert sae.decode(acts).shape == (3, 5, D_IN)
    assert torch.allclose(sae(x), sae.decode(sae.encode(x)))
    with pytest.raises(ValueError, match="d_in"):
        sae.encode(torch.randn(4, D_IN + 1))
    rebuilt = saes.sae_from_config(sae.config(), sae.state_dict())
    assert type(rebuilt) is type(sae) and torch.equal(rebuilt.eval()(x), sae(x))


@pytest.mark.parametrize("name", sorted(saes.VARIANTS))
def test_same_seed_same_initialization(name):
    a, b, c = make(name, seed=3), make(name, seed=3), make(name, seed=4)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.W_dec, c.W_dec)


def test_relu_encode_subtracts_b_dec_then_adds_b_enc():
    sae = randomize_(make("relu"))
    x = torch.randn(7, D_IN)
    expected = torch.relu((x - sae.b_dec) @ sae.W_enc + sae.b_enc)
    assert torch.allclose(sae.encode(x), expected, atol=1e-5)
    assert torch.allclose(sae.decode(expected), expected @ sae.W_dec + sae.b_dec, atol=1e-5)


def test_relu_loss_is_squared_error_plus_l1():
    sae = randomize_(make("relu", l1_coefficient=0.3))
    x = torch.randn(9, D_IN)
    acts = torch.relu((x - sae.b_dec) @ sae.W_enc + sae.b_enc)
    x_hat = acts @ sae.W_dec + sae.b_dec
    terms = sae.loss(x, sparsity_scale=0.5)
    mse = ((x - x_hat) ** 2).sum(-1).mean()
    assert torch.allclose(terms.mse, mse, rtol=1e-5)
    assert torch.allclose(terms.total, mse + 0.5 * 0.3 * acts.abs().sum(-1).mean(), rtol=1e-5)


def test_after_step_renormalizes_decoder_rows():
    sae = randomize_(make("relu"))
    assert not torch.allclose(sae.W_dec.norm(dim=-1), torch.ones(D_SAE))
    sae.after_step_()
    assert torch.allclose(sae.W_dec.norm(dim=-1), torch.ones(D_SAE), atol=1e-6)


# ------------------------------------------------------------------------------------------ TopK


def test_topk_keeps_exactly_k_per_row():
    sae = randomize_(make("topk", k=5))
    x = torch.randn(64, D_IN)
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    acts = sae.encode(x)
    kept = acts > 0
    assert (kept.sum(-1) <= 5).all()
    # where the 5th largest pre-activation is positive, exactly 5 survive, and they are the 5 largest
    rows = pre.sort(-1, descending=True).values[:, 4] > 0
    assert rows.sum() > 10 and (kept[rows].sum(-1) == 5).all()
    top5 = pre.sort(-1, descending=True).indices[:, :5]
    assert torch.equal(torch.zeros_like(kept).scatter(-1, top5, True)[rows], kept[rows])
    assert torch.allclose(acts[kept], pre[kept])


def test_topk_breaks_ties_toward_the_lower_index_every_time():
    sae = identity_pre(make("topk", d_in=6, d_sae=6, k=3))
    x = torch.tensor([[3.0, 1.0, 1.0, 1.0, 2.0, 0.0],
                      [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
                      [0.0, 5.0, 5.0, 0.0, 5.0, 5.0]])
    expected = torch.tensor([[3.0, 1.0, 0.0, 0.0, 2.0, 0.0],
                             [1.0, 1.0, 1.0, 0.0, 0.0, 0.0],
                             [0.0, 5.0, 5.0, 0.0, 5.0, 0.0]])
    for _ in range(3):
        assert torch.equal(sae.encode(x), expected)
    values, indices = saes.top_k(x, 3)
    assert [sorted(r) for r in indices.tolist()] == [[0, 1, 4], [0, 1, 2], [1, 2, 4]]


def test_topk_training_decodes_sparsely_like_the_dense_decoder():
    sae = randomize_(make("topk", k=4)).train()
    x = torch.randn(32, D_IN)
    terms = sae.training_terms(x)
    assert torch.allclose(terms.x_hat, sae.decode(sae.encode(x)), atol=1e-5)
    terms.x_hat.pow(2).sum().backward()
    dense = randomize_(make("topk", k=4))
    dense.decode(dense.encode(x)).pow(2).sum().backward()
    for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
        assert torch.allclose(getattr(sae, name).grad, getattr(dense, name).grad, atol=1e-4), name


def test_topk_rejects_bad_k():
    with pytest.raises(ValueError, match="k must be"):
        saes.TopKSAE(4, 8, k=9)
    with pytest.raises(ValueError, match="k must be"):
        saes.TopKSAE(4, 8, k=0)


# ------------------------------------------------------------------------------------------ BatchTopK


def test_batch_topk_keeps_k_times_batch_over_the_batch():
    sae = randomize_(make("batchtopk", k=3)).train()
    x = torch.randn(20, D_IN)
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    acts = sae.encode(x)
    kept = acts > 0
    assert kept.sum() == 3 * 20
    assert kept.sum(-1).unique().numel() > 1, "rows should share the budget unevenly"
    cut = pre.flatten().sort(descending=True).values[3 * 20 - 1]
    assert torch.equal(kept, pre >= cut)
    assert torch.allclose(acts[kept], pre[kept])
    terms = sae.training_terms(x)
    assert torch.allclose(terms.x_hat, acts @ sae.W_dec + sae.b_dec, atol=1e-5)
    assert terms.l0.item() == pytest.approx(3.0)


def test_batch_topk_uses_its_threshold_at_inference():
    sae = randomize_(make("batchtopk", k=3))
    sae.threshold.fill_(0.7)
    x = torch.randn(20, D_IN)
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    sae.eval()
    assert torch.allclose(sae.encode(x), pre * (pre > 0.7))
    assert torch.allclose(sae.encode(x[:1]), (pre * (pre > 0.7))[:1]), "inference must not depend on the batch"


def test_batch_topk_threshold_is_an_average_of_the_smallest_kept_activation():
    sae = make("batchtopk", k=2, threshold_momentum=0.5).train()
    gen = torch.Generator().manual_seed(0)
    smallest = []
    for _ in range(3):
        x = torch.randn(10, D_IN, generator=gen)
        pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
        smallest.append(pre.flatten().sort(descending=True).values[2 * 10 - 1].item())
        sae.training_terms(x)
    first = smallest[0]
    second = first + 0.5 * (smallest[1] - first)
    third = second + 0.5 * (smallest[2] - second)
    assert sae.threshold.item() == pytest.approx(third, rel=1e-5)


# ------------------------------------------------------------------------------------------ JumpReLU


def test_jumprelu_forward_gates_at_the_threshold():
    sae = randomize_(make("jumprelu"))
    x = torch.randn(16, D_IN)
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    assert torch.allclose(sae.encode(x), pre * (pre > sae.threshold))


def test_jumprelu_threshold_gradient_is_the_rectangle_kernel_by_hand():
    # threshold 0.5, bandwidth 0.2: the kernel is open on (0.4, 0.6); 0.45, 0.55, 0.59 are inside
    pre = torch.tensor([[0.45, 0.55, 0.65, 0.30, 0.59]], requires_grad=True)
    threshold = torch.tensor([0.5], requires_grad=True)
    saes.jumprelu(pre, threshold, 0.2).sum().backward()
    assert threshold.grad.item() == pytest.approx(-(0.5 / 0.2) * 3)  # -(theta / eps) per entry inside
    assert torch.equal(pre.grad, torch.tensor([[0.0, 1.0, 1.0, 0.0, 1.0]]))  # H(pre - theta), no kernel term

    pre.grad, threshold.grad = None, None
    saes.step(pre, threshold, 0.2).sum().backward()
    assert threshold.grad.item() == pytest.approx(-(1 / 0.2) * 3)
    assert pre.grad is None or torch.count_nonzero(pre.grad) == 0, "the L0 step must not train the encoder"


def test_jumprelu_threshold_gets_no_gradient_outside_the_bandwidth():
    pre = torch.tensor([[0.0, 0.2, 0.39, 0.61, 0.9, 2.0]])
    threshold = torch.tensor([0.5], requires_grad=True)
    (saes.jumprelu(pre, threshold, 0.2).sum() + saes.step(pre, threshold, 0.2).sum()).backward()
    assert threshold.grad.item() == 0.0


def test_jumprelu_per_feature_threshold_gradients_and_l0_penalty():
    sae = identity_pre(make("jumprelu", d_in=3, d_sae=3, l0_coefficient=2.0, bandwidth=0.1))
    with torch.no_grad():
        sae.threshold.copy_(torch.tensor([0.5, 1.0, 0.2]))
    x = torch.tensor([[0.52, 0.3, 0.9], [0.48, 1.04, 0.1], [0.9, 0.97, 0.22]])
    terms = sae.loss(x)
    # active entries: 0.52, 0.9 (feature 0), 1.04 (feature 1), 0.9, 0.22 (feature 2): 5 over 3 rows
    assert terms.sparsity.item() == pytest.approx(2.0 * 5 / 3)
    terms.sparsity.backward()
    # inside each feature's kernel: feature 0 (0.45, 0.55): 0.52, 0.48; feature 1 (0.95, 1.05): 1.04, 0.97;
    # feature 2 (0.15, 0.25): 0.22. Gradient: coefficient * (-1 / eps) * count / batch
    expected = torch.tensor([2, 2, 1]) * (2.0 * -(1 / 0.1) / 3)
    assert torch.allclose(sae.threshold.grad, expected.float(), rtol=1e-5)


def test_jumprelu_threshold_stays_non_negative():
    sae = make("jumprelu")
    with torch.no_grad():
        sae.threshold.fill_(-0.3)
    sae.after_step_()
    assert (sae.threshold == 0).all()


# ------------------------------------------------------------------------------------------ OrtSAE


def max_cosine_by_hand(W):
    n = len(W)
    cos = torch.tensor([[F.cosine_similarity(W[i], W[j], dim=0).item() for j in range(n)] for i in range(n)])
    cos.fill_diagonal_(-2.0)
    return cos.max(-1).values


def test_orthogonality_penalty_one_chunk_is_the_exact_mean_of_max_cosines():
    W = torch.randn(10, 4, generator=torch.Generator().manual_seed(1)) * torch.linspace(0.5, 3, 10)[:, None]
    by_hand = max_cosine_by_hand(W)
    assert torch.allclose(saes.max_cosine_similarities(W, block=3), by_hand, atol=1e-5)
    assert saes.orthogonality_penalty(W, n_chunks=1).item() == pytest.approx(by_hand.mean().item(), abs=1e-5)


def test_orthogonality_penalty_known_cases():
    assert saes.orthogonality_penalty(torch.eye(6), n_chunks=3).item() == pytest.approx(0.0, abs=1e-6)
    same = torch.ones(8, 3)
    assert saes.orthogonality_penalty(same, n_chunks=2).item() == pytest.approx(1.0, abs=1e-6)
    antipodal = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])  # the largest cosine is -1, not |cos|
    assert saes.orthogonality_penalty(antipodal).item() == pytest.approx(-1.0)


def test_chunked_orthogonality_penalty_takes_each_maximum_within_a_random_chunk():
    W = torch.randn(12, 5, generator=torch.Generator().manual_seed(2))
    exact = saes.orthogonality_penalty(W, n_chunks=1).item()
    values = []
    for seed in range(5):
        chunked = saes.orthogonality_penalty(W, n_chunks=3, generator=torch.Generator().manual_seed(seed)).item()
        # the chunks: a permutation from the generator, split into three equal parts
        perm = torch.randperm(12, generator=torch.Generator().manual_seed(seed))
        by_hand = torch.cat([max_cosine_by_hand(W[c]) for c in perm.tensor_split(3)]).mean().item()
        assert chunked == pytest.approx(by_hand, abs=1e-5)
        assert chunked <= exact + 1e-6
        values.append(chunked)
    assert len(set(round(v, 6) for v in values)) > 1, "the chunks should change with the generator"
    with pytest.raises(ValueError, match="n_chunks"):
        saes.orthogonality_penalty(W, n_chunks=7)


def test_ortsae_adds_the_penalty_and_its_gradient_reaches_the_decoder():
    sae = make("ortsae", orthogonality_coefficient=0.5, n_chunks=1).train()
    x = torch.randn(16, D_IN)
    terms = sae.loss(x)
    plain = saes.BatchTopKSAE(D_IN, D_SAE, k=4).train().loss(x)
    assert terms.penalties["orthogonality"].item() == pytest.approx(
        0.5 * max_cosine_by_hand(sae.W_dec.detach()).mean().item(), abs=1e-5)
    assert terms.total.item() == pytest.approx(plain.total.item() + terms.penalties["orthogonality"].item(), rel=1e-5)
    terms.penalties["orthogonality"].backward()
    assert sae.W_dec.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------ dead features


def test_auxk_loss_by_hand_and_firing_tracker():
    sae = randomize_(make("relu"))
    x = torch.randn(6, D_IN)
    terms = sae.training_terms(x)
    dead = torch.zeros(D_SAE, dtype=torch.bool)
    assert saes.auxk_loss(sae, x, terms.x_hat, terms.pre, dead).item() == 0.0
    dead[[3, 7]] = True
    pre = terms.pre.detach()
    best = torch.where(pre[:, 3] >= pre[:, 7], 3, 7)  # k_aux=1: each row's larger dead pre-activation
    value = pre.gather(1, best[:, None]).relu()
    e_hat = value * sae.W_dec.detach()[best]
    expected = ((x - terms.x_hat.detach()) - e_hat).pow(2).sum(-1).mean()
    loss = saes.auxk_loss(sae, x, terms.x_hat, terms.pre, dead, k_aux=1)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert sae.W_dec.grad[[3, 7]].abs().sum() > 0 and sae.W_dec.grad[0].abs().sum() == 0

    tracker = saes.FiringTracker(4, window=10)
    tracker.update(torch.tensor([True, False, False, True]), 6)
    tracker.update(torch.tensor([True, True, False, False]), 6)
    assert tracker.tokens_since_fired.tolist() == [0, 0, 12, 6]
    assert tracker.dead().tolist() == [False, False, True, False]


# ------------------------------------------------------------------------------------------ training


@pytest.mark.parametrize("name", sorted(saes.VARIANTS))
def test_training_reduces_the_loss_and_is_deterministic(name):
    torch.set_num_threads(1)
    data = sparse_data()
    kwargs = {"steps": 60, "batch_size": 256, "lr": 3e-3, "log_every": 10, "progress": False, "seed": 5,
              "dead_window": 512}
    first = make(name, seed=1)
    history = saes.train_sae(first, data, **kwargs)
    assert history[-1]["mse"] < 0.6 * history[0]["mse"], history
    assert history[-1]["explained_variance"] > history[0]["explained_variance"]
    assert not first.training
    again = make(name, seed=1)
    saes.train_sae(again, data, **kwargs)
    for (key, p), q in zip(first.state_dict().items(), again.state_dict().values()):
        assert torch.equal(p, q), f"{key} differs between two runs with the same seeds"
    other = make(name, seed=1)
    saes.train_sae(other, data, **{**kwargs, "seed": 6})
    assert not torch.equal(other.W_dec, first.W_dec), "another training seed should give other weights"


def test_training_folds_the_input_scale_back():
    torch.set_num_threads(1)
    data = sparse_data(seed=1)
    kwargs = {"steps": 30, "batch_size": 256, "progress": False}
    small, large = make("jumprelu", seed=2), make("jumprelu", seed=2)
    saes.train_sae(small, data, **kwargs)
    saes.train_sae(large, 100 * data, **kwargs)
    # trained on 100x the activations, the SAE should read and write them at 100x
    assert torch.allclose(large(100 * data[:64]), 100 * small(data[:64]), rtol=1e-3, atol=1e-2)
    assert torch.allclose(large.threshold, 100 * small.threshold, rtol=1e-3, atol=1e-4)


def test_lr_schedule_warms_up_and_decays():
    from mi_course.saes.training import lr_factor

    factors = [lr_factor(s, 100, 10, 0.2) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[50] == 1.0 and factors[80] == pytest.approx(1.0) and factors[99] == pytest.approx(1 / 20)


def test_train_sae_rejects_mismatched_activations():
    with pytest.raises(ValueError, match="d_in"):
        saes.train_sae(make("relu"), torch.randn(100, D_IN + 2), steps=1, progress=False)


# ------------------------------------------------------------------------------------------ the lite lm


@pytest.fixture(scope="module")
def lm():
    return mi_course.load_model("lm", mode="lite", device="cpu")


@pytest.fixture(scope="module")
def tokens(lm):
    return pack_documents(lm.tokenizer, corpus.generate_corpus(40, seed=3, split="heldout"), 24)[:12]


def test_activation_store_matches_the_model_at_the_hook(lm, tokens):
    store = saes.ActivationStore.from_model(lm, tokens, HOOK, batch_rows=5, dtype=torch.float32, progress=False)
    _, cache = lm.run_with_cache(tokens)
    expected = cache[HOOK][:, 1:].reshape(-1, lm.cfg.d_model)
    assert len(store) == len(tokens) * (tokens.shape[1] - 1) and store.d_in == lm.cfg.d_model
    assert torch.allclose(store.rows(), expected, atol=1e-5)
    half = saes.ActivationStore.from_model(lm, tokens, HOOK, progress=False)  # float16 by default
    assert half.dtype == torch.float16 and torch.allclose(half.rows(), expected, rtol=2e-3, atol=2e-3)
    z = saes.ActivationStore.from_model(lm, tokens[:2], "blocks.0.attn.hook_z", progress=False)
    assert z.d_in == lm.cfg.n_heads * lm.cfg.d_head
    with pytest.raises(ValueError, match="not a hook"):
        saes.ActivationStore.from_model(lm, tokens, "blocks.9.hook_resid_pre", progress=False)


def test_activation_store_spills_to_disk_and_shuffles_every_row_once_per_epoch():
    data = torch.arange(300 * 4, dtype=torch.float32).view(300, 4)  # row r holds 4r .. 4r+3
    store = saes.ActivationStore.from_tensor(data, dtype=torch.float16, max_memory_bytes=1000)
    assert store.on_disk and store.path.exists()
    assert torch.equal(store.rows(), data.half().float())
    for buffer in (None, 64):
        stream = store.batches(50, seed=1, buffer_tokens=buffer)
        epoch = torch.cat([next(stream) for _ in range(6)])
        rows = epoch[:, 0].div(4)
        assert sorted(rows.tolist()) != rows.tolist(), "batches should be shuffled"
        assert torch.equal(data.half().float()[:, 0].div(4).sort().values, rows.sort().values)
        again = store.batches(50, seed=1, buffer_tokens=buffer)
        assert torch.equal(torch.cat([next(again) for _ in range(6)]), epoch), "same seed, same batches"
    memory = saes.ActivationStore.from_tensor(data)
    assert not memory.on_disk
    rows = torch.cat([next(iter(memory.batches(300, seed=0)))[:, 0]])
    assert sorted(rows.tolist()) == data[:, 0].tolist()
    with pytest.raises(ValueError, match="batch_size"):
        next(memory.batches(301))


def perfect_sae(d_in):
    """x = ReLU(x) - ReLU(-x): a ReLU SAE of 2 d_in features that reconstructs exactly."""
    sae = saes.ReLUSAE(d_in, 2 * d_in, hook_name=HOOK)
    eye = torch.eye(d_in)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        sae.W_dec.copy_(torch.cat([eye, -eye], dim=0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def zero_sae(d_in):
    sae = saes.ReLUSAE(d_in, 8, hook_name=HOOK)
    with torch.no_grad():
        for p in sae.parameters():
            p.zero_()
    return sae


class Fixed:
    """A duck-typed SAE: encode returns fixed activations, decode a fixed function of the input."""

    def __init__(self, acts, decode, W_dec):
        self.acts, self._decode, self.W_dec = acts, decode, W_dec
        self.x = None

    def encode(self, x):
        self.x = x
        return self.acts[: len(x)]

    def decode(self, acts):
        return self._decode(self.x)


def test_reconstruction_metrics_on_hand_made_cases():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 6, generator=gen) + 2.0
    perfect = saes.reconstruction_metrics(perfect_sae(6), x, batch_size=64)
    assert perfect["explained_variance"] == pytest.approx(1.0, abs=1e-6) and perfect["mse"] < 1e-10
    assert perfect["l0"] == pytest.approx(float((x != 0).sum(-1).float().mean()))

    total = ((x - x.mean(0)) ** 2).sum()
    zero = saes.reconstruction_metrics(zero_sae(6), x)
    assert zero["explained_variance"] == pytest.approx(1 - ((x ** 2).sum() / total).item(), rel=1e-5)
    assert zero["l0"] == 0 and zero["dead_fraction"] == 1.0

    acts = torch.zeros(200, 3)
    acts[:, 0] = 1.0  # fires always: dense
    acts[:10, 1] = 2.0  # fires on 5% of tokens
    mean = Fixed(acts, lambda v: x.mean(0).expand_as(v), torch.zeros(3, 6))
    m = saes.reconstruction_metrics(mean, x, batch_size=200, dense_threshold=0.1)
    assert m["explained_variance"] == pytest.approx(0.0, abs=1e-5)
    assert m["dead_fraction"] == pytest.approx(1 / 3) and m["dense_fraction"] == pytest.approx(1 / 3)
    assert m["l0"] == pytest.approx(1.05)
    assert torch.allclose(m["feature_density"], torch.tensor([1.0, 0.05, 0.0]))
    shifted = saes.reconstruction_metrics(Fixed(acts, lambda v: v + 0.5, torch.zeros(3, 6)), x, batch_size=200)
    assert shifted["mse"] == pytest.approx(0.25, rel=1e-5)
    assert saes.reconstruction_metrics(mean, x, n_tokens=50, batch_size=200)["n_tokens"] == 50


def test_ce_loss_recovered_perfect_zero_and_mean(lm, tokens):
    d = lm.cfg.d_model
    perfect = saes.ce_loss_recovered(perfect_sae(d), lm, tokens, batch_rows=5, progress=False)
    # TransformerLens's own per-token loss, positions 1.. (position 0's prediction is never affected)
    clean = lm(tokens, return_type="loss", loss_per_token=True)[:, 1:].mean().item()
    assert perfect["ce_clean"] == pytest.approx(clean, rel=1e-5)
    assert perfect["ce_sae"] == pytest.approx(clean, rel=1e-4)
    assert perfect["ce_loss_recovered_zero"] == pytest.approx(1.0, abs=1e-3)
    assert perfect["ce_loss_recovered_mean"] == pytest.approx(1.0, abs=1e-3)
    assert perfect["kl_sae"] == pytest.approx(0.0, abs=1e-4)
    assert perfect["ce_zero_ablated"] > clean + 0.5

    zero = saes.ce_loss_recovered(zero_sae(d), lm, tokens, progress=False)
    assert zero["ce_loss_recovered_zero"] == pytest.approx(0.0, abs=1e-6)
    assert zero["kl_sae"] == pytest.approx(zero["kl_zero_ablated"], rel=1e-6)

    # an SAE that always outputs the activations' mean over the same positions recovers 0 under mean ablation
    _, cache = lm.run_with_cache(tokens)
    mean_sae = zero_sae(d)
    with torch.no_grad():
        mean_sae.b_dec.copy_(cache[HOOK][:, 1:].reshape(-1, d).mean(0))
    mean = saes.ce_loss_recovered(mean_sae, lm, tokens, batch_rows=5, progress=False)  # several batches, one mean
    assert mean["ce_loss_recovered_mean"] == pytest.approx(0.0, abs=1e-4)


def test_sae_metrics_combines_both_and_needs_a_hook(lm, tokens):
    m = saes.sae_metrics(perfect_sae(lm.cfg.d_model), lm, tokens, n_tokens=40, progress=False)
    assert m["n_tokens"] == 2 * (tokens.shape[1] - 1)  # the first rows holding 40 scored positions
    assert m["explained_variance"] == pytest.approx(1.0, abs=1e-6)
    assert m["ce_loss_recovered_zero"] == pytest.approx(1.0, abs=1e-3)
    anonymous = saes.ReLUSAE(lm.cfg.d_model, 8)
    with pytest.raises(ValueError, match="hook_name"):
        saes.ce_loss_recovered(anonymous, lm, tokens, progress=False)


# ------------------------------------------------------------------------------------------ SAELens


@pytest.mark.parametrize("name, architecture", [("relu", "standard"), ("topk", "topk"), ("jumprelu", "jumprelu"),
                                                ("batchtopk", "jumprelu"), ("ortsae", "jumprelu")])
def test_saelens_loads_a_saved_course_sae_with_the_same_encode_and_decode(tmp_path, name, architecture):
    from sae_lens import SAE

    sae = randomize_(make(name, seed=4)).eval()
    sae.hook_name = HOOK
    folder = saes.save_saelens(sae, tmp_path / name, model_name="lite-lm", context_size=24)
    assert {p.name for p in folder.iterdir()} == {"cfg.json", "sae_weights.safetensors"}
    loaded = SAE.load_from_disk(str(folder))
    assert loaded.cfg.architecture() == architecture
    assert loaded.cfg.metadata.hook_name == HOOK and loaded.cfg.metadata.context_size == 24
    x = torch.randn(40, D_IN, generator=torch.Generator().manual_seed(9)) * 2
    with torch.no_grad():
        acts = sae.encode(x)
        assert (acts > 0).any()
        assert torch.allclose(loaded.encode(x), acts, atol=1e-5)
        assert torch.allclose(loaded.decode(acts), sae.decode(acts), atol=1e-5)
        back = saes.load_saelens(folder)
        assert torch.allclose(back(x), sae(x), atol=1e-5)


def test_from_saelens_folds_decoder_norms_and_the_input_bias():
    from sae_lens.saes.topk_sae import TopKSAE as SAELensTopK
    from sae_lens.saes.topk_sae import TopKSAEConfig

    cfg = TopKSAEConfig(d_in=D_IN, d_sae=D_SAE, k=5, rescale_acts_by_decoder_norm=True, apply_b_dec_to_input=False)
    theirs = SAELensTopK(cfg)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in (theirs.W_enc, theirs.W_dec, theirs.b_enc, theirs.b_dec):
            p.copy_(torch.randn(p.shape, generator=gen))
    ours = saes.from_saelens(theirs)
    x = torch.randn(30, D_IN, generator=gen)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs.decode(theirs.encode(x)), atol=1e-4)
        assert torch.equal(ours.encode(x) > 0, theirs.encode(x) > 0)


def test_metrics_accept_a_saelens_sae(tmp_path, lm, tokens):
    from sae_lens import SAE

    ours = randomize_(saes.ReLUSAE(lm.cfg.d_model, 64, seed=1, hook_name=HOOK)).eval()
    theirs = SAE.load_from_disk(str(saes.save_saelens(ours, tmp_path / "relu")))
    store = saes.ActivationStore.from_model(lm, tokens, HOOK, dtype=torch.float32, progress=False)
    a, b = saes.reconstruction_metrics(ours, store), saes.reconstruction_metrics(theirs, store)
    assert a["explained_variance"] == pytest.approx(b["explained_variance"], rel=1e-5)
    assert a["l0"] == pytest.approx(b["l0"]) and torch.equal(a["feature_density"], b["feature_density"])
    ce_ours = saes.ce_loss_recovered(ours, lm, tokens[:4], progress=False)
    ce_theirs = saes.ce_loss_recovered(theirs, lm, tokens[:4], progress=False)  # hook from cfg.metadata
    assert ce_theirs["ce_sae"] == pytest.approx(ce_ours["ce_sae"], rel=1e-5)
    assert math.isfinite(ce_theirs["ce_loss_recovered_zero"])


def test_plot_frontier_keeps_the_labels_of_close_points_apart():
    """Lesson 09's frontier: BatchTopK and OrtSAE land within 0.03 L0 and 0.001 of each other (the shipped SAEs'
    card values below); their labels, and every other pair, must not overlap."""
    import itertools

    import matplotlib.pyplot as plt

    from mi_course.saes.plots import plot_frontier

    card = {"relu": (29.543, 0.78104, 0.8886), "topk": (32.0, 0.90927, 0.97602),
            "batchtopk": (31.19264, 0.89585, 0.967), "jumprelu": (26.84673, 0.80192, 0.92864),
            "ortsae": (31.22296, 0.89506, 0.96628)}
    results = {name: {"l0": l0, "explained_variance": ev, "ce_loss_recovered": ce}
               for name, (l0, ev, ce) in card.items()}
    fig = plot_frontier(results)
    renderer = fig.canvas.get_renderer()
    try:
        for ax in fig.axes:
            labels = {t.get_text(): t.get_window_extent(renderer) for t in ax.texts}
            assert sorted(labels) == sorted(card), f"one label per SAE, got {sorted(labels)}"
            for (a, box_a), (b, box_b) in itertools.combinations(labels.items(), 2):
                assert not box_a.overlaps(box_b), f"the labels {a!r} and {b!r} overlap on {ax.get_ylabel()!r}"
    finally:
        plt.close(fig)


def test_a_second_variant_under_a_taken_name_is_refused():
    from mi_course.saes.base import VARIANTS, variant

    class Impostor(saes.TopKSAE):
        architecture = "topk"

    with pytest.raises(ValueError, match="'topk' is already registered"):
        variant(Impostor)
    assert VARIANTS["topk"] is saes.TopKSAE
    assert variant(saes.TopKSAE) is saes.TopKSAE, "registering the same class again is harmless"


def test_the_training_step_and_losses_are_typed():
    from mi_course.saes.base import Losses, TrainStep

    x = torch.randn(6, D_IN, generator=torch.Generator().manual_seed(0))
    sae = saes.OrtSAE(D_IN, D_SAE, k=4, orthogonality_coefficient=0.5).train()
    losses = sae.loss(x)
    assert isinstance(losses, Losses) and isinstance(losses.step, TrainStep) and losses.step.acts is None
    assert set(losses.penalties) == {"orthogonality"}
    assert losses.total.item() == pytest.approx(
        (losses.mse + losses.sparsity + losses.penalties["orthogonality"]).item(), rel=1e-6)
