"""Sparse autoencoders: the variants, their activations, one training loop, metrics, and SAELens interop.

    from mi_course import saes
    store = saes.ActivationStore.from_model(model, tokens, "blocks.2.hook_resid_pre")
    sae = saes.TopKSAE(d_in=store.d_in, d_sae=2048, k=32, hook_name="blocks.2.hook_resid_pre")
    saes.train_sae(sae, store, steps=2000)
    saes.sae_metrics(sae, model, heldout_tokens)          # L0, explained variance, CE loss recovered, KL
    saes.save_saelens(sae, "out/topk")                    # sae_lens.SAE.load_from_disk("out/topk")

Every variant has the same interface: ``encode``, ``decode``, ``forward``, ``W_enc`` [d_in, d_sae],
``W_dec`` [d_sae, d_in], ``b_enc``, ``b_dec`` (see :mod:`mi_course.saes.base`).
"""

from mi_course.saes.activations import (
    DEFAULT_MAX_MEMORY_BYTES,
    ActivationStore,
    hook_activations,
    logits_with_replacement,
)
from mi_course.saes.base import VARIANTS, SparseAutoencoder, sae_from_config
from mi_course.saes.batch_topk import BatchTopKSAE, batch_top_k, batch_topk_activation
from mi_course.saes.dashboard import (
    FeatureActivations,
    FeatureDashboard,
    FeatureLabels,
    TextView,
    feature_activations,
    feature_dashboard,
    feature_dashboards,
    label_features,
    labelled_rows,
    neuronpedia_url,
    text_view,
)
from mi_course.saes.dead_features import FiringTracker, auxk_loss
from mi_course.saes.jumprelu import JumpReLUSAE, jumprelu, rectangle, step
from mi_course.saes.metrics import ce_loss_recovered, reconstruction_metrics, sae_metrics
from mi_course.saes.orthogonal import OrtSAE, max_cosine_similarities, orthogonality_penalty
from mi_course.saes.relu import ReLUSAE
from mi_course.saes.saelens import from_saelens, load_saelens, save_saelens
from mi_course.saes.steering import (
    clamp_hook,
    continuation_loss,
    generate_with_steering,
    mention_share,
    steering_hook,
    steering_sweep,
)
from mi_course.saes.topk import TopKSAE, top_k, topk_activation
from mi_course.saes.training import train_sae

__all__ = [
    "FeatureActivations", "FeatureDashboard", "FeatureLabels", "TextView", "feature_activations", "feature_dashboard",
    "feature_dashboards", "label_features", "labelled_rows", "neuronpedia_url", "text_view",
    "clamp_hook", "continuation_loss", "generate_with_steering", "mention_share", "steering_hook", "steering_sweep",
    "ActivationStore", "BatchTopKSAE", "DEFAULT_MAX_MEMORY_BYTES", "FiringTracker", "JumpReLUSAE", "OrtSAE",
    "ReLUSAE", "SparseAutoencoder", "TopKSAE", "VARIANTS", "auxk_loss", "batch_top_k", "batch_topk_activation",
    "ce_loss_recovered", "from_saelens", "hook_activations", "jumprelu", "load_saelens", "logits_with_replacement",
    "max_cosine_similarities", "orthogonality_penalty", "reconstruction_metrics", "rectangle", "sae_from_config",
    "sae_metrics", "save_saelens", "step", "top_k", "topk_activation", "train_sae",
]
