"""Train the lite vision organisms ``vision``, ``vision-b`` and ``vision-c``: small CNNs on generated images.

    python scripts/train_vision.py --role vision            # writes mi_course/checkpoints/vision
    python scripts/train_vision.py --role vision-b          # a second architecture and seed, for universality
    python scripts/train_vision.py --role vision-c --steps 1500   # a residual CNN (--arch residual), a third seed
    python scripts/train_vision.py --role vision --steps 200 --out /tmp/vis-smoke --no-manifest

Data: :mod:`mi_course.organisms.images` (10 classes: arcs, lines, edges, corners, circles, shapes, textures,
colour blobs, fish facing left or right, fish-like negatives), a fresh seeded batch every step
(``generate(batch, seed=(seed, step))``), so nothing is stored and the run is reproducible on one CPU thread.

Model: :class:`mi_course.models.lite_vision.LiteCNN` (normalization inside, replicate padding, named layers
conv1..convN, global max pool, linear); with ``--arch residual`` (vision-c) a
:class:`~mi_course.models.lite_vision.ResidualCNN`, whose layers after the stem conv1 are residual blocks.
Training uses BatchNorm, folded into the convolutions before saving, and two auxiliary linear heads on
global-max-pooled activations that are dropped afterwards: an 8-way arc-orientation head (on arc images; it
makes the named layer carry orientation information) and a left/right head (on fish images; it makes the
named layer keep the two facings apart). ``--aux-curve-units`` (vision only) goes further and trains single
channels to be curve detectors; vision-c, the universality organism, refuses it: its detectors arise on
their own.

After training it measures the shipped (folded) model with :mod:`mi_course.vision.tuning` (curve detectors
in every conv layer, union over cases for the fish class), :mod:`mi_course.vision.drawn` (the best layer's
detectors on arcs and lines drawn by PIL, in every variation) and, for a residual model, the accuracy with
its skip connections cut; and writes ``config.json``, ``model.safetensors``, ``metrics.json`` and
``card.json`` to ``--out``; when ``--out`` is inside the checkpoint folder it refreshes the manifest.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shlex
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mi_course.config import seed_everything
from mi_course.models.checkpoints import regenerate_command, write_checkpoint
from mi_course.models.lite_vision import LiteCNN, ResidualBlock, lite_cnn
from mi_course.organisms import images
from mi_course.paths import checkpoint_dir
from mi_course.vision import drawn
from mi_course.vision.tuning import curve_detector_report, union_over_cases

ROLE_DEFAULTS = {
    # the counterpart of InceptionV1: 5x5 then 3x3 kernels
    "vision": {"seed": 0, "arch": "plain", "widths": "16,32,128,128", "kernels": "5,5,3,3", "pools": "2,2,2,1",
               "aux_arc_layer": "conv4", "aux_facing_layer": "conv3", "fish_cases": "species"},
    # the counterpart of AlexNet: a large first kernel, other widths, another seed
    "vision-b": {"seed": 1, "arch": "plain", "widths": "24,48,128,128", "kernels": "7,3,3,3", "pools": "2,2,2,1",
                 "aux_arc_layer": "conv4", "aux_facing_layer": "conv3", "fish_cases": "mirror"},
    # the counterpart of ResNet-50: a stem conv, then residual blocks (same four stages), another seed;
    # vision-b's recipe (no planted curve units: universality is about detectors that arise on their own)
    "vision-c": {"seed": 2, "arch": "residual", "widths": "32,64,128,128", "kernels": "5,3,3,3",
                 "pools": "2,2,2,1", "aux_arc_layer": "conv4", "aux_facing_layer": "conv3", "fish_cases": "mirror"},
}
CITATIONS = {
    "vision": "Cammarata, Goh, Carter, Schubert, Petrov, Olah. Curve Detectors. Distill, 2020; Olah et al., "
              "Zoom In: An Introduction to Circuits. Distill, 2020",
    "vision-b": "Olah et al., Zoom In (universality). Distill, 2020; Cammarata et al., Curve Detectors. Distill, "
                "2020",
    "vision-c": "He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR, 2016; Olah et al., Zoom "
                "In (universality). Distill, 2020; Cammarata et al., Curve Detectors. Distill, 2020",
}
ARCHS = ("plain", "residual")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--role", choices=sorted(ROLE_DEFAULTS), required=True)
    ap.add_argument("--seed", type=int, default=None, help="default: 0 for vision, 1 for vision-b, 2 for vision-c")
    ap.add_argument("--arch", choices=ARCHS, default=None,
                    help="plain: conv layers (vision, vision-b); residual: a plain stem conv1, then residual blocks "
                         "relu(conv_b(conv_a(x)) + shortcut(x)) (vision-c); default: the role's"),
    ap.add_argument("--out", type=Path, default=None, help="default: mi_course/checkpoints/<role>")
    ap.add_argument("--steps", type=int, default=700, help="training steps (one fresh batch each)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--size", type=int, default=64, help="image size (pixels)")
    ap.add_argument("--widths", default=None, help="comma-separated conv widths")
    ap.add_argument("--kernels", default=None, help="comma-separated odd kernel sizes")
    ap.add_argument("--pools", default=None, help="comma-separated max-pool factors after each conv (1 = none)")
    ap.add_argument("--aux-arc-layer", default=None, help="layer of the arc-orientation head ('none' to drop)")
    ap.add_argument("--aux-arc-weight", type=float, default=0.5)
    ap.add_argument("--aux-curve-units", type=int, default=0,
                    help="per-unit curve objective on --aux-arc-layer: its first N channels (N = 8) each learn "
                         "to fire on arcs of one 45-degree orientation bin and stay silent on straight strokes, "
                         "edges, shapes, textures and colour blobs (0: off)")
    ap.add_argument("--aux-curve-weight", type=float, default=1.0)
    ap.add_argument("--aux-curve-batch", type=int, default=32,
                    help="extra images per step for the curve units: half arcs, half lines and corners")
    ap.add_argument("--aux-facing-layer", default=None, help="layer of the left/right head ('none' to drop)")
    ap.add_argument("--aux-facing-weight", type=float, default=0.5)
    ap.add_argument("--aux-sparsity", type=float, default=0.0,
                    help="L1 weight on the global-max-pooled activations of --aux-facing-layer (all images): "
                         "sparse units tend to specialize to one case of the fish")
    ap.add_argument("--fish-cases", choices=images.FISH_CASES, default=None,
                    help="how the fish class's two cases differ (mi_course.organisms.images); default: species for "
                         "vision, mirror for vision-b")
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--eval-n", type=int, default=1000, help="held-out images for the accuracy printed")
    ap.add_argument("--no-manifest", action="store_true", help="do not rewrite mi_course/checkpoints/MANIFEST.json")
    ap.add_argument("--remeasure", action="store_true",
                    help="do not train: re-measure the checkpoint in --out (default: the role's folder) and "
                         "rewrite the measured parts of its card (and its architecture section)")
    args = ap.parse_args(argv)
    for key, value in ROLE_DEFAULTS[args.role].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in ("aux_arc_layer", "aux_facing_layer"):
        if getattr(args, key) in ("none", ""):
            setattr(args, key, None)
    if args.role == "vision-c" and args.aux_curve_units:
        ap.error("vision-c is the universality model: its curve detectors must arise on their own, so "
                 "--aux-curve-units (planted detectors) is refused for it")
    return args


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def model_config(args, mean, std) -> dict:
    widths, kernels, pools = ints(args.widths), ints(args.kernels), ints(args.pools)
    if not len(widths) == len(kernels) == len(pools):
        raise ValueError(f"--widths, --kernels and --pools need one value per conv: {widths}, {kernels}, {pools}")
    convs = [{"name": f"conv{i + 1}", "out": w, "kernel": k, "pool": p}
             for i, (w, k, p) in enumerate(zip(widths, kernels, pools))]
    if args.arch == "residual":
        for c in convs[1:]:  # conv1 stays a plain stem
            c["block"] = "residual"
    return {"kind": "cnn", "in_channels": 3, "mean": mean, "std": std, "convs": convs,
            "global_pool": "max", "classes": list(images.CLASSES), "input_size": args.size}


# classes with no curvature at all: the curve units' negatives (circles, fish and doubles hold curves)
STRAIGHT_CLASSES = ("line", "edge", "corner", "shape", "texture", "colour")


def curve_unit_loss(acts: torch.Tensor, labels: torch.Tensor, arc_bin: torch.Tensor, scale: nn.Linear):
    """Binary cross-entropy that makes unit k of ``acts`` (batch, 8) an arc detector for orientation bin k:
    target 1 on arcs of bin k, 0 on arcs two or more bins away and on the straight classes; arcs in the
    neighbouring bins and the curved classes are left out (a tuning curve has a width; a ring holds every
    orientation)."""
    n = acts.shape[1]
    k = torch.arange(n)
    straight = torch.isin(labels, torch.tensor([images.CLASSES.index(c) for c in STRAIGHT_CLASSES]))
    is_arc = arc_bin >= 0
    distance = (arc_bin[:, None] - k[None]).remainder(n)
    distance = torch.minimum(distance, n - distance)                       # circular, in bins
    target = (is_arc[:, None] & (distance == 0)).float()
    counted = (is_arc[:, None] & (distance != 1)) | straight[:, None]
    if not counted.any():
        return acts.sum() * 0
    logits = F.softplus(scale.weight[:, 0]) * acts + scale.bias
    # positives are rare (one bin in eight of one class in ten): weight them up
    weight = torch.where(target > 0, torch.full_like(target, 4.0), torch.ones_like(target))
    loss = F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="none")
    return (loss * counted).sum() / counted.sum()


def forward_with(model: LiteCNN, x: torch.Tensor, keep: set[str]):
    """Logits and the global-max-pooled activations of the layers in ``keep``."""
    x = (x - model.mean) / model.std
    pooled = {}
    for name in model.layer_names:
        x = getattr(model, name)(x)
        if name in keep:
            pooled[name] = x.amax((2, 3))
        if model.pools[name] > 1:
            x = F.max_pool2d(x, model.pools[name])
    return model.fc(x.amax((2, 3))), pooled


@torch.no_grad()
def accuracy(model, x, labels, batch=250) -> float:
    model.eval()
    pred = torch.cat([model(x[i:i + batch]).argmax(-1) for i in range(0, len(x), batch)])
    return (pred == labels).float().mean().item()


def summarize_curves(report: dict) -> dict:
    chans = report["channels"]
    return {"layer": report["layer"], "n_channels": len(chans),
            "curve_detectors": report["curve_detectors"],
            "preferred_deg": {str(c): chans[c]["preferred_deg"] for c in report["curve_detectors"]},
            "quadrants": report["quadrants"],
            "stretch_detectors": report["stretch_detectors"],
            "stretch_quadrants": report["stretch_quadrants"],
            "detectors": [{k: chans[c][k] for k in ("channel", "preferred_deg", "peak_to_mean", "half_width_deg",
                                                    "line_ratio", "stretch")} for c in report["curve_detectors"]]}


def fed_by_previous(model: LiteCNN, name: str) -> str:
    """The module of layer ``name`` whose weight reads the previous layer's (pooled) output: the layer itself,
    or a residual block's first convolution (``conv4.conv_a``)."""
    return f"{name}.conv_a" if isinstance(getattr(model, name), ResidualBlock) else name


def union_pairs(model: LiteCNN) -> list[tuple[str, str]]:
    """(previous layer, layer fed by it) for every layer after the first, then (last layer, fc)."""
    names = model.layer_names
    return [(prev, fed_by_previous(model, name)) for prev, name in zip(names[:-1], names[1:])] + [(names[-1], "fc")]


def measure(model: LiteCNN, seed: int, size: int, fish_cases: str = "mirror") -> dict:
    """Everything the card states, measured on the shipped (folded, eval-mode) model."""
    model.eval()
    curves = {name: curve_detector_report(model, name) for name in model.layer_names}
    best = max(curves.values(), key=lambda r: (len(r["quadrants"]) >= 3 and len(r["curve_detectors"]) >= 4,
                                               len(r["stretch_quadrants"]), len(r["quadrants"]),
                                               len(r["curve_detectors"])))
    case_seed = 10_000 + seed
    left = images.class_images("fish", 64, seed=case_seed, size=size, facing="left", fish_cases=fish_cases)
    right = images.class_images("fish", 64, seed=case_seed + 1, size=size, facing="right", fish_cases=fish_cases)
    others, labels, _ = images.generate(256, seed=case_seed + 2, size=size, fish_cases=fish_cases)
    others = others[labels != images.FISH]
    pairs = union_pairs(model)
    unions = {}
    for prev, layer in pairs:
        res = union_over_cases(model, layer, prev, left, right, images_other=others)
        pr = res["prev_responses"]
        ratios = [(ra / max(rb, 1e-6), i) for i, (ra, rb) in enumerate(zip(pr["a"], pr["b"])) if max(ra, rb) > 1e-6]
        unions[layer] = {"layer": layer, "prev_layer": prev, "union_units": res["union_units"],
                         "strongest_left_unit": {"unit": max(ratios)[1], "left_over_right": round(max(ratios)[0], 3)},
                         "strongest_right_unit": {"unit": min(ratios)[1],
                                                  "right_over_left": round(1 / max(min(ratios)[0], 1e-6), 3)},
                         "units": [u for u in res["units"] if u["union"]],
                         "n_left_units": len(res["case_units"]["a"]), "n_right_units": len(res["case_units"]["b"]),
                         "left_units": res["case_units"]["a"], "right_units": res["case_units"]["b"]}
    return {"curves": curves, "best_curve_layer": best["layer"], "unions": unions,
            "drawn": drawn_robustness(model, best), "skips": skip_ablation(model, seed, size, fish_cases),
            "union_params": {k: res[k] for k in ("min_both", "min_case_ratio", "top_k", "min_selectivity")},
            "union_images": {"left": f"class_images('fish', 64, seed={case_seed}, facing='left', "
                                     f"fish_cases={fish_cases!r})",
                             "right": f"class_images('fish', 64, seed={case_seed + 1}, facing='right', "
                                      f"fish_cases={fish_cases!r})",
                             "other": f"generate(256, seed={case_seed + 2}, fish_cases={fish_cases!r}) without fish"}}


class _NoSkip(nn.Module):
    """A residual block's shortcut, cut: the block computes relu(conv_b(conv_a(x))) alone."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(())


@torch.no_grad()
def skip_ablation(model: LiteCNN, seed: int, size: int, fish_cases: str) -> dict | None:
    """A residual model's accuracy with each block's skip connection cut (and all of them): how much the
    network routes through its shortcuts. None for a plain CNN."""
    blocks = [n for n in model.layer_names if isinstance(getattr(model, n), ResidualBlock)]
    if not blocks:
        return None
    x, y, _ = images.generate(600, seed=(seed, 10 ** 6 + 3), size=size, fish_cases=fish_cases)

    def acc_without(cut):
        saved = {n: getattr(model, n).shortcut for n in cut}
        try:
            for n in cut:
                getattr(model, n).shortcut = _NoSkip()
            return round(accuracy(model, x, y), 4)
        finally:
            for n, shortcut in saved.items():
                getattr(model, n).shortcut = shortcut

    return {"images": f"generate(600, seed=({seed}, {10 ** 6 + 3}))", "accuracy": acc_without([]),
            "without_shortcut": {n: acc_without([n]) for n in blocks}, "without_all_shortcuts": acc_without(blocks),
            "how": "each block's shortcut replaced by zero (the block then computes relu(conv_b(conv_a(x))))"}


def angle_between(a: float, b: float) -> float:
    """The angle between two orientations in degrees, in [0, 180]."""
    d = abs(a - b) % 360
    return min(d, 360 - d)


def drawn_robustness(model: LiteCNN, best: dict) -> dict:
    """The best layer's curve detectors on stimuli drawn another way (:mod:`mi_course.vision.drawn`: PIL-drawn
    arcs and lines), in each single variation and combined case: which cases each meets the course's criteria
    in, and its preferred orientation on the canonical drawn case (and how far that is from its preference on
    the course's own stimuli)."""
    cases = {**drawn.VARIATIONS, **drawn.COMBINED}
    channels = best["curve_detectors"]
    rep = drawn.robustness_report(model, best["layer"], channels, cases) if channels else {}
    robust = [c for c in channels if len(rep[c]["failed"]) <= 1]
    shift = {c: angle_between(rep[c]["preferred_deg"]["canonical"], best["preferred_deg"][c]) for c in channels}
    return {"layer": best["layer"], "cases": list(cases), "criteria": "mi_course.vision.tuning.THRESHOLDS",
            "channels": {str(c): {"failed": rep[c]["failed"], "share": round(rep[c]["share"], 4),
                                  "preferred_deg_canonical": rep[c]["preferred_deg"]["canonical"],
                                  "orientation_shift_deg": shift[c]} for c in channels},
            "max_orientation_shift_deg": max(shift.values(), default=None),
            "passes_canonical": [c for c in channels if "canonical" in rep[c]["passed"]],
            "robust_channels": robust,
            "robust_quadrants": sorted({int(best["preferred_deg"][c] // 90) % 4 for c in robust}),
            "how": "mi_course.vision.drawn.robustness_report(model, layer, channels, {**VARIATIONS, **COMBINED}); "
                   "robust = fails at most one case"}


def remeasure(args) -> dict:
    """Re-measure a written checkpoint folder and rewrite its card's measured parts (no training)."""
    from safetensors.torch import load_file

    out = Path(args.out) if args.out is not None else checkpoint_dir() / args.role
    config = json.loads((out / "config.json").read_text())
    card = json.loads((out / "card.json").read_text())
    model = lite_cnn(config)
    model.load_state_dict(load_file(str(out / "model.safetensors")))
    model.eval()
    seed = card["training"]["seed"]
    m = measure(model, seed, config.get("input_size", 64), card["dataset"].get("fish_cases", "mirror"))
    report(m)
    trained = parse_args(shlex.split(card["regenerate"])[2:])  # the options the checkpoint was trained with
    fresh = make_card(trained, None, config, model, m, [card["final_train"]], card["training_seconds"],
                      card["measured"]["accuracy_2000_fresh_images"], card["training"]["n_params_trained"])
    fresh["dataset"].update({k: card["dataset"][k] for k in ("images_seen", "image_size") if k in card["dataset"]})
    for part in ("measured", "mechanism", "dataset", "architecture"):
        card[part] = fresh[part]
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"rewrote {out / 'card.json'}", flush=True)
    return card


def report(m: dict) -> None:
    for name, rep in m["curves"].items():
        print(f"{name}: {len(rep['curve_detectors'])} curve detectors {rep['curve_detectors']} in quadrants "
              f"{rep['quadrants']}; stretch {rep['stretch_detectors']} in quadrants {rep['stretch_quadrants']}",
              flush=True)
    for name, u in m["unions"].items():
        print(f"union over cases at {name} (fed by {u['prev_layer']}: {u['n_left_units']} left / "
              f"{u['n_right_units']} right units; strongest {u['strongest_left_unit']}, "
              f"{u['strongest_right_unit']}): {u['union_units']}", flush=True)


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(1)
    if args.remeasure:
        return remeasure(args)
    seed_everything(args.seed)

    sample, _, _ = images.generate(1024, seed=(args.seed, 10 ** 6), size=args.size, fish_cases=args.fish_cases)
    mean = [round(v, 4) for v in sample.mean((0, 2, 3)).tolist()]
    std = [round(v, 4) for v in sample.std((0, 2, 3)).tolist()]
    config = model_config(args, mean, std)
    model = lite_cnn(config, batchnorm=True)
    channels = {c["name"]: c["out"] for c in config["convs"]}
    heads = nn.ModuleDict()
    if args.aux_arc_layer:
        heads["arc"] = nn.Linear(channels[args.aux_arc_layer], images.N_ARC_BINS)
    if args.aux_facing_layer:
        heads["facing"] = nn.Linear(channels[args.aux_facing_layer], 2)
    if args.aux_curve_units:
        if args.aux_curve_units != images.N_ARC_BINS or not args.aux_arc_layer:
            raise SystemExit(f"--aux-curve-units must be {images.N_ARC_BINS} (one unit per bin) with --aux-arc-layer")
        heads["curve_scale"] = nn.Linear(1, args.aux_curve_units)  # per unit: logit = softplus(a) * act + b
    params = list(model.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / args.warmup, 0.5 * (1 + math.cos(math.pi * min(s / args.steps, 1.0)))))
    keep = {args.aux_arc_layer, args.aux_facing_layer} - {None}
    test_x, test_y, _ = images.generate(args.eval_n, seed=(args.seed, 10 ** 6 + 1), size=args.size,
                                         fish_cases=args.fish_cases)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"{args.role}: {config['convs']}, {n_params:,} parameters (with BatchNorm), {args.steps} steps of "
          f"{args.batch_size}; mean {mean} std {std}", flush=True)

    history, start, data_seconds = [], time.time(), 0.0
    for step in range(1, args.steps + 1):
        model.train()
        t0 = time.time()
        x, y, extra = images.generate(args.batch_size, seed=(args.seed, step), size=args.size,
                                       fish_cases=args.fish_cases)
        data_seconds += time.time() - t0
        logits, pooled = forward_with(model, x, keep)
        loss_cls = F.cross_entropy(logits, y)
        loss = loss_cls
        parts = {"cls": loss_cls.item()}
        if "arc" in heads and (extra["arc_bin"] >= 0).any():
            m = extra["arc_bin"] >= 0
            la = F.cross_entropy(heads["arc"](pooled[args.aux_arc_layer][m]), extra["arc_bin"][m])
            loss = loss + args.aux_arc_weight * la
            parts["arc"] = la.item()
        if "facing" in heads and (extra["facing"] >= 0).any():
            m = extra["facing"] >= 0
            lf = F.cross_entropy(heads["facing"](pooled[args.aux_facing_layer][m]), extra["facing"][m])
            loss = loss + args.aux_facing_weight * lf
            parts["facing"] = lf.item()
        if args.aux_curve_units:
            # the main batch has few arcs of each bin: an extra one of arcs and straight strokes
            half = args.aux_curve_batch // 2
            xc, yc, ec = images.generate(args.aux_curve_batch, seed=(args.seed, 10 ** 7 + step), size=args.size,
                                         labels=[images.ARC] * half + [images.CLASSES.index("line"),
                                                                       images.CLASSES.index("corner")]
                                         * ((args.aux_curve_batch - half) // 2) + [images.ARC]
                                         * ((args.aux_curve_batch - half) % 2), fish_cases=args.fish_cases)
            _, pooled_c = forward_with(model, xc, {args.aux_arc_layer})
            both = torch.cat([pooled[args.aux_arc_layer], pooled_c[args.aux_arc_layer]])[:, :args.aux_curve_units]
            lc = curve_unit_loss(both, torch.cat([y, yc]), torch.cat([extra["arc_bin"], ec["arc_bin"]]),
                                 heads["curve_scale"])
            loss = loss + args.aux_curve_weight * lc
            parts["curve"] = lc.item()
        if args.aux_sparsity > 0 and args.aux_facing_layer:
            ls = pooled[args.aux_facing_layer].mean()
            loss = loss + args.aux_sparsity * ls
            parts["l1"] = ls.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % args.eval_every == 0 or step == args.steps:
            acc = accuracy(model, test_x, test_y)
            row = {"step": step, "loss": loss.item(), **{f"loss_{k}": round(v, 5) for k, v in parts.items()},
                   "test_acc": acc, "seconds": round(time.time() - start, 1)}
            history.append(row)
            print(f"step {step:5d}  loss {loss.item():.4f} ({', '.join(f'{k} {v:.3f}' for k, v in parts.items())})"
                  f"  held-out acc {acc:.4f}  {time.time() - start:6.0f}s (data {data_seconds:.0f}s)", flush=True)
    seconds = time.time() - start

    model.eval()
    unfolded = accuracy(model, test_x, test_y)
    model.fold_batchnorm()
    shipped = lite_cnn(config)
    shipped.load_state_dict(model.state_dict())
    shipped.eval()
    final_x, final_y, _ = images.generate(2000, seed=(args.seed, 10 ** 6 + 2), size=args.size,
                                           fish_cases=args.fish_cases)
    final_acc = accuracy(shipped, final_x, final_y)
    print(f"trained in {seconds:.0f}s; held-out accuracy {unfolded:.4f} (BatchNorm) -> folded model "
          f"{accuracy(shipped, test_x, test_y):.4f}; on 2000 fresh images {final_acc:.4f}", flush=True)

    t0 = time.time()
    m = measure(shipped, args.seed, args.size, args.fish_cases)
    report(m)
    print(f"measured in {time.time() - t0:.0f}s", flush=True)

    out = Path(args.out) if args.out is not None else checkpoint_dir() / args.role
    card = make_card(args, argv, config, shipped, m, history, seconds, final_acc, n_params)
    write_checkpoint(out, config, shipped.state_dict(), card, extras={"metrics.json": history},
                     manifest=not args.no_manifest)
    return card


def not_reached(role: str, best: dict, stretch: bool, union_layers: list) -> list[str]:
    """The course's target properties this checkpoint does not reach, in words."""
    missing = []
    if not (len(best["curve_detectors"]) >= 4 and len(best["quadrants"]) >= 3):
        missing.append(f"curve detectors: the best layer ({best['layer']}) has {len(best['curve_detectors'])} in "
                       f"quadrants {best['quadrants']}; the target is >= 4 in >= 3 quadrants")
    if not stretch:
        missing.append(f"stretch goal (>= 4 channels with peak >= 3x mean, half-width <= 45 degrees, >= 2x lines, "
                       f"all four quadrants): {len(best['stretch_detectors'])} such channels in quadrants "
                       f"{best['stretch_quadrants']}")
    if role == "vision" and not union_layers:
        missing.append("union over cases: no unit responds >= 0.5x its max to both facings of the fish while its "
                       "largest positive inputs include a left-preferring and a right-preferring unit (>= 3x)")
    return missing


def describe_layers(config: dict) -> list[str]:
    """One line per layer of a ``cnn`` config, for the card."""
    lines, channels = [], config.get("in_channels", 3)
    for c in config["convs"]:
        k, out, pool = c["kernel"], c["out"], (f", max pool {c['pool']}" if c["pool"] > 1 else "")
        if c.get("block", "plain") == "residual":
            skip = f"1x1 conv {channels} -> {out}" if channels != out else "identity"
            lines.append(f"{c['name']}: residual block relu(conv_b(conv_a(x)) + shortcut(x)): conv_a {k}x{k} -> {out} "
                         f"channels + ReLU, conv_b {k}x{k} -> {out}, shortcut {skip}; replicate padding{pool}")
        else:
            lines.append(f"{c['name']}: conv {k}x{k} -> {out} channels, replicate padding, ReLU{pool}")
        channels = out
    return lines


def make_card(args, argv, config, model, m, history, seconds, final_acc, n_params) -> dict:
    best = m["curves"][m["best_curve_layer"]]
    curve_summary = {name: summarize_curves(rep) for name, rep in m["curves"].items()}
    union_layers = [name for name, u in m["unions"].items() if u["union_units"]]
    stretch = (len(best["stretch_detectors"]) >= 4 and len(best["stretch_quadrants"]) == 4)
    # the layer to report: the first with union units, else the last conv (fed by the one before it)
    main_union = m["unions"][union_layers[0] if union_layers else union_pairs(model)[-2][1]]
    # channels trained to be curve detectors (--aux-curve-units), if any, in the layer reported
    planted = list(range(args.aux_curve_units)) if args.aux_curve_units and args.aux_arc_layer == best["layer"] else []
    mechanism = {
        "curve_detectors": {
            "layer": best["layer"], "channels": best["curve_detectors"],
            "preferred_deg": {str(c): best["preferred_deg"][c] for c in best["curve_detectors"]},
            "quadrants": best["quadrants"],
            "stretch_channels": best["stretch_detectors"], "stretch_quadrants": best["stretch_quadrants"],
            "planted_channels": planted,
            "arose_on_their_own": [c for c in best["curve_detectors"] if c not in planted],
            "note": "orientation = direction the 90-degree arc bulges towards, degrees counter-clockwise on "
                    "screen from 'pointing right' (mi_course.vision.stimuli); quadrant q = [90q, 90q+90)",
        },
        "union_over_cases": {
            "reached": bool(union_layers),
            "class": "fish", "case_a": "facing left", "case_b": "facing right",
            "pose_invariant_layer": main_union["layer"], "pose_invariant_units": main_union["union_units"],
            "case_layer": main_union["prev_layer"], "left_facing_units": main_union["left_units"],
            "right_facing_units": main_union["right_units"],
            "strongest_left_unit": main_union["strongest_left_unit"],
            "strongest_right_unit": main_union["strongest_right_unit"],
            "units": main_union["units"],
        },
    }
    return {
        "role": args.role,
        "task": "10-way classification of procedurally generated 64x64 images (mi_course.organisms.images)",
        "input": "RGB images in [0, 1], shape (batch, 3, H, W); the model normalizes internally with config "
                 "mean/std; any H, W >= 16 works (global max pool); trained at 64x64",
        "classes": list(images.CLASSES),
        "dataset": {"generator": "mi_course.organisms.images.generate(batch, seed=(seed, step))",
                    "images_seen": args.steps * args.batch_size, "image_size": args.size,
                    "fish_cases": args.fish_cases,
                    "description": "\n\n".join(images.__doc__.split("\n\n")[1:4]).strip()},
        "architecture": {
            "class": f"mi_course.models.lite_vision.{type(model).__name__}",
            "layers": describe_layers(config) + ["global max pool", f"fc: linear -> {len(images.CLASSES)} logits"],
            "hook_names": [n for n, _ in model.named_modules() if n and n.split(".")[-1] != "bn"],
            "normalization": {"mean": config["mean"], "std": config["std"],
                              "note": "inside the model; mean/std of 1024 generated images"},
            "batchnorm": "used in training, folded into conv weights and biases in the shipped checkpoint",
            "n_params_shipped": sum(p.numel() for p in model.parameters()),
        },
        "training": {
            "optimizer": {"name": "AdamW", "lr": args.lr, "weight_decay": args.weight_decay,
                          "schedule": f"linear warm-up {args.warmup} steps, cosine decay to 0"},
            "steps": args.steps, "batch_size": args.batch_size, "seed": args.seed,
            "aux_heads": {"arc_orientation": None if not args.aux_arc_layer else
                          f"linear on global-max-pooled {args.aux_arc_layer}, 8 bins of 45 degrees, weight "
                          f"{args.aux_arc_weight}, arc images only",
                          "facing": None if not args.aux_facing_layer else
                          f"linear on global-max-pooled {args.aux_facing_layer}, left/right, weight "
                          f"{args.aux_facing_weight}, fish images only",
                          "curve_units": None if not args.aux_curve_units else
                          f"{args.aux_arc_layer} channels 0-{args.aux_curve_units - 1}: unit k trained (binary "
                          f"cross-entropy, weight {args.aux_curve_weight}) to fire on arcs of orientation bin k "
                          "(45k degrees) and not on arcs two or more bins away nor on the straight classes "
                          f"({', '.join(STRAIGHT_CLASSES)})",
                          "sparsity": None if not (args.aux_sparsity and args.aux_facing_layer) else
                          f"L1 on global-max-pooled {args.aux_facing_layer} (all images), weight {args.aux_sparsity}",
                          "shipped": False},
            "loss": "cross-entropy on the class + the auxiliary heads' cross-entropies (+ the sparsity term)",
            "n_params_trained": n_params,
        },
        "training_seconds": round(seconds, 1),
        "trained_on": f"1 CPU thread, torch {torch.__version__}, {platform.machine()}",
        "final_train": history[-1],
        "measured": {
            "accuracy_2000_fresh_images": final_acc,
            "accuracy_images": f"generate(2000, seed=({args.seed}, {10 ** 6 + 2}))",
            "curve_detectors": curve_summary,
            "best_curve_layer": m["best_curve_layer"],
            "curve_stimuli": best["stimuli"],
            "curve_thresholds": best["thresholds"],
            "stretch_thresholds": best["stretch_thresholds"],
            "stretch_goal_reached": stretch,
            "not_reached": not_reached(args.role, best, stretch, union_layers),
            "union_over_cases": {name: {k: u[k] for k in ("prev_layer", "union_units", "n_left_units",
                                                          "n_right_units", "strongest_left_unit",
                                                          "strongest_right_unit")}
                                 for name, u in m["unions"].items()},
            "union_layers": union_layers,
            "union_params": m["union_params"],
            "union_images": m["union_images"],
            "drawn_robustness": m["drawn"],
            **({"skip_ablation": m["skips"]} if m["skips"] else {}),
            "how": "mi_course.vision.tuning: curve_detector_report(model, layer) for every conv layer; "
                   "union_over_cases(model, layer, prev_layer, left, right, images_other=...) for each layer "
                   "and the one feeding it (the images named in union_images)",
        },
        "mechanism": mechanism,
        "regenerate": regenerate_command("scripts/train_vision.py", argv),
        "citation": CITATIONS[args.role],
    }


if __name__ == "__main__":
    main()
