# %% [markdown]
# # 04 Circuits, motifs and universality
#
# Lessons 01 and 03 asked what one unit responds to. This lesson asks how the network *computes* it: a unit
# is a weighted sum of the units below it, so once you know what those units detect, the weights between
# them can be read like a program. Olah et al. (*Zoom In: An Introduction to Circuits*, Distill 2020) made
# three claims about this: **features** are the fundamental unit of a network, features are connected by
# weights into **circuits** that can be understood, and analogous features and circuits form across models
# (**universality**). They also found patterns that recur, **motifs**. You test each in the weights and in the
# behaviour of a model:
#
# 1. **expanded weights**: the weights between two layers that are not directly connected, through
#    InceptionV1's bottleneck convolutions (`expanded_weights`), and the strongest **excitatory and
#    inhibitory** inputs of a curve detector (`top_inputs`), shown as weight images;
# 2. **equivariance**: curve detectors of different orientations are rotated copies of one another
#    (`equivariance_map`);
# 3. **union over cases**: a pose-invariant unit built from a left-facing and a right-facing pathway
#    (`union_over_cases`);
# 4. **polysemanticity**: units that respond to unrelated things (`polysemanticity_report`), and an
#    investigation: find one in the lite model (`polysemantic_unit`);
# 5. **universality**: the same curve detectors, found by one criterion, in several networks
#    (`compare_tuning_across_models`).
#
# In full mode the model is lucent's InceptionV1 (the network of the Distill articles): its curve detectors in
# `mixed3b` (Cammarata et al., *Curve Detectors*, Distill 2020), the dog-head circuit of `mixed4a` and `mixed4b`
# and the polysemantic unit `mixed4e:55` (Zoom In), and AlexNet, VGG19 and ResNet-50 for universality. In lite
# mode it is the course's CNN `vision`, whose `conv4` reads `conv3` directly. Its card says how its mechanisms
# came about: conv4's channels **0-7 were planted** as curve detectors by an auxiliary training objective (one
# unit per 45-degree orientation bin); its other curve detectors, its left- and right-facing fish units and
# its pose-invariant fish units arose on their own from the classification task (of those other curve
# detectors, lesson 03 found most fragile: they meet the criterion on the course's own stimuli and fail it on
# most arcs drawn another way). The labelled parts of the
# lesson (fish facing left and right, the ten generated classes) use the lite model in both modes: the images
# InceptionV1 was trained on are not shipped with the course.

# %% [setup]

# %%
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from mi_course import check, claim, get_mode, load_model, model_card
from mi_course.organisms.images import CLASSES, class_images, generate
from mi_course.vision.circuits import field_stimuli
from mi_course.vision.featurevis import render
from mi_course.vision.image_plots import image_grid
from mi_course.vision.tuning import channel_responses, curve_detector_report

torch.set_num_threads(1)  # small convolutions: one thread is about as fast
FULL, GPU = get_mode() == "full", torch.cuda.is_available()
model = load_model("vision")
lite = load_model("vision", mode="lite") if FULL else model  # the labelled experiments use the lite model
card = model_card("vision", mode="lite")
PLANTED = list(range(8))  # lite conv4 channels 0-7: curve detectors planted by an auxiliary objective (card)
if FULL:  # InceptionV1's curve detectors in mixed3b (Cammarata et al., Curve Detectors, 2020)
    LAYER, BELOW, SIZE = "mixed3b", "mixed3a", 224
    CURVES = [379, 406, 385, 343, 342, 388, 324, 340, 330, 349]
else:
    LAYER, BELOW, SIZE = "conv4", "conv3", 64
    CURVES = PLANTED
STEPS = (256 if GPU else 4) if FULL else 96  # feature-visualization steps


def stimuli(m, layer: str) -> dict:
    """The tuning stimuli for ``layer`` of model ``m``, sized to its receptive field as in lesson 03: in lite mode
    the course's defaults (arcs of radius 6-14 px on 64 px, for conv4's 44 px field); in full mode lesson 03's
    stimuli for mixed3b scaled to the layer's field (``field_stimuli``); a CPU runs the ImageNet networks slowly,
    so there a coarse set of those (every 30 degrees, the middle radius)."""
    if not FULL:
        return {}
    field = field_stimuli(m, layer)
    return field if GPU else {**field, "orientations": tuple(range(0, 360, 30)), "radii": field["radii"][1:2]}


print(f"{type(model).__name__}: curve detectors {CURVES} of {LAYER}, reading {BELOW}")

# %% [markdown]
# ## 1. Expanded weights
#
# A convolution's weight `W[out, in, kh, kw]` holds one small kernel per pair of channels: how channel `in`
# of the layer below, at each offset, pushes channel `out` up (positive) or down (negative). In the lite model
# `conv4` reads `conv3`'s (pooled) output directly, so the kernels from a conv3 channel to a conv4 channel are
# simply `model.conv4.weight[out, in]`, 3 x 3.
#
# InceptionV1 is less direct. Its block `mixed3b` concatenates four branches: a 1x1 convolution (128
# channels), a 3x3 convolution behind a 1x1 "bottleneck" (192), a 5x5 convolution behind a bottleneck (96)
# and a pooling branch (64). Curve detector `mixed3b:379` is channel 379 - 128 - 192 = 59 of the 5x5 branch:
# it reads `mixed3a` through a 1x1 convolution to 32 channels and then a 5x5 convolution. The weights
# *between the features* of `mixed3a` and `mixed3b` exist only as the product of the two. Olah et al. call that
# product the **expanded weights** (Zoom In, 2020; Voss et al., *Visualizing Weights*, Distill 2021): the
# kernel you would get if the chain were one convolution. It leaves out the ReLU after the bottleneck (and any
# bias), so it is exact only where that ReLU is active; it is the linear part of the circuit.
#
# PyTorch's `F.conv2d` is a cross-correlation: `y[o, p] = sum over m and offsets a of k[o, m, a] x[m, p + a]`.
# Two in a row give `sum over a, b of k2[o, m, b] k1[m, i, a] x[i, p + a + b]`: the composed kernel at offset
# `c` sums `k2[b] k1[a]` over `a + b = c`, a true **convolution** of the two kernels (summed over the middle
# channels `m`), and its size is `kh1 + kh2 - 1`.
#
# <details><summary>Hint: the idea</summary>
#
# Compose two kernels at a time, first with second, then the result with the third. `F.conv2d` can do the
# composition if you treat the first kernel's *input* channels as a batch and its *output* channels as the
# channels the second kernel reads; it computes a cross-correlation, so flip the second kernel to turn it
# into a convolution, and pad by the kernel size minus one so that every overlap is kept.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# Check the list (not empty, every kernel 4-D, `kernels[i + 1].shape[1] == kernels[i].shape[0]`). Then
# `result = kernels[0].float()`; for each next kernel `k`:
# `result = F.conv2d(result.transpose(0, 1), k.flip(-2, -1), padding=(kh - 1, kw - 1)).transpose(0, 1)`.
# </details>

# %% [exercise] 04.expanded_weights

# %%
check("04.expanded_weights")

# %% [markdown]
# The composed kernel applied once does what the chain does: a 1x1 bottleneck and a 5x5 convolution of random
# weights, run one after the other and as one.

# %%
g = torch.Generator().manual_seed(0)
bottleneck, conv5 = torch.randn(8, 16, 1, 1, generator=g), torch.randn(6, 8, 5, 5, generator=g)
x = torch.randn(1, 16, 20, 20, generator=g)
chain, once = F.conv2d(F.conv2d(x, bottleneck), conv5), F.conv2d(x, expanded_weights([bottleneck, conv5]))
print(f"largest difference between the chain and the expanded weights: {(chain - once).abs().max():.2e}")

# %% [markdown]
# Now the model's own weights into the first curve detector, from every channel below it: in full mode
# through `mixed3b`'s 5x5 branch (`inception_channel` says which branch a concatenated channel lives in), in
# lite mode conv4's own kernels (a chain of one).

# %%
from mi_course.vision.circuits import inception_channel, layer_weights, plot_weight_images

if FULL:
    where = inception_channel(model, LAYER, CURVES[0])   # {'branch': '5x5', 'index': 59, 'modules': [...]}
    branch = expanded_weights([getattr(model, name).weight for name in where["modules"]])
    UNIT_W, ROW = branch, where["index"]
    print(f"{LAYER}:{CURVES[0]} is channel {where['index']} of the {where['branch']} branch; expanded weights "
          f"{tuple(branch.shape)}")
else:
    UNIT_W, ROW = expanded_weights([model.conv4.weight]), CURVES[0]
W, below = layer_weights(model, LAYER)  # every branch, padded to one size: [out, in, K, K]
print(f"expanded weights into {LAYER} from {below}: {tuple(W.shape)}")
mine = F.pad(UNIT_W[ROW], [(W.shape[-1] - UNIT_W.shape[-1]) // 2] * 4)  # centred in the block's kernel size
claim("the course's expanded weights for the whole block agree with yours for the curve detector",
      lambda: torch.allclose(W[CURVES[0]], mine, atol=1e-5), seen=(W[CURVES[0]] - mine).abs().max());

# %% [markdown]
# A residual block is the other place where expanded weights are needed. The lite `vision-c` (the course's
# residual CNN, where it is shipped) computes `conv4 = relu(conv_b(relu(conv_a(conv3))) + conv3)`: two paths
# from conv3 to conv4, the two 3 x 3 convolutions (5 x 5 once expanded) and the identity shortcut, which hands
# every conv3 channel to the conv4 channel of the same number with weight 1. Do some of its conv4 curve
# detectors simply *pass through*: conv3 curve detectors carried by the shortcut, with the main path adding
# little?

# %%
from mi_course.models.registry import lite_shipped

if not FULL and lite_shipped("vision-c"):
    residual = load_model("vision-c")
    block = residual.conv4
    main_path = expanded_weights([block.conv_a.weight, block.conv_b.weight])  # [128, 128, 5, 5]
    print(f"vision-c conv4: main path {tuple(main_path.shape)}, shortcut {type(block.shortcut).__name__}")
    r3, r4 = curve_detector_report(residual, "conv3"), curve_detector_report(residual, "conv4")
    for c in r4["curve_detectors"]:
        inherited = c in r3["curve_detectors"]
        line = f"  conv4:{c:3d} prefers {r4['preferred_deg'][c]:5.0f} deg; main path's largest total weight " \
               f"{main_path[c].sum((1, 2)).abs().max():.2f}"
        print(line + (f"; conv3:{c} is a curve detector too, at {r3['preferred_deg'][c]:.0f} deg" if inherited else ""))

# %% [markdown]
# A line that names a conv3 curve detector of the same orientation is a detector the block passes on: the
# shortcut's weight of 1 dwarfs every weight of the main path (the largest totals above are a fraction of it),
# so the feature arrives in conv4 as it left conv3. The other detectors are new, made by the main path. Lesson 05
# meets the same structure in transformers, where every layer reads from and adds to one residual stream.

# %% [markdown]
# ## 2. Excitation and inhibition
#
# Which units below matter most to a unit? Each input channel's kernel summed over its positions, its **total
# weight**, says how much a uniform patch of that feature pushes the unit up or down. The largest positive
# totals are its strongest **excitatory** inputs, the most negative its strongest **inhibitory** ones. (A
# kernel can excite at one offset and inhibit at another; the weight images below show where.)
#
# <details><summary>Hint: the idea</summary>
#
# Sum each kernel over its two spatial axes to get a matrix `[out, in]`; the unit's inputs are its row. Sort
# that row (stably, so ties keep the lower channel first), keep the positive entries for one list and the
# negative ones, most negative first, for the other.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `total = weights.sum((2, 3))` for a 4-D weight; `row = total[unit]`;
# `torch.sort(row, descending=True, stable=True).indices` for the excitatory order,
# `torch.sort(row, stable=True).indices` for the inhibitory one; keep `(i, row[i].item())` where
# `row[i] > 0` (or `< 0`), at most `k`. Check `unit` and `k` first.
# </details>

# %% [exercise] 04.top_inputs

# %%
check("04.top_inputs")

# %% [markdown]
# The curve detector's six strongest excitatory and six strongest inhibitory inputs, as **weight images**
# (red excites, blue inhibits, one colour scale for all), under a feature visualization of each input channel
# (lesson 01); each title gives the input's total weight and, when lesson 03's criterion finds it a curve
# detector, its preferred orientation. Below them, each input's radial tuning curve (lesson 03: the response to
# arcs of every orientation), with the detector's own preferred orientation dashed.

# %%
from mi_course.vision.tuning import ORIENTATIONS, tuning_curves

report_below = curve_detector_report(model, BELOW, **stimuli(model, BELOW))  # every channel below: a curve detector?
report_above = curve_detector_report(model, LAYER, **stimuli(model, LAYER))
stats_below = {ch["channel"]: ch for ch in report_below["channels"]}
unit_deg = next(ch["preferred_deg"] for ch in report_above["channels"] if ch["channel"] == CURVES[0])


def angle_apart(a: float, b: float) -> float:
    return abs((a - b + 180) % 360 - 180)


def curve_tag(i: int) -> str:
    ch = stats_below[i]
    return f"curve {ch['preferred_deg']:.0f}°" if ch["curve_detector"] else "-"


def curve_inputs(pairs, lo: float, hi: float) -> list[int]:
    """The inputs among ``pairs`` that are curve detectors preferring lo to hi degrees away from the unit."""
    return [i for i, _ in pairs if stats_below[i]["curve_detector"]
            and lo <= angle_apart(stats_below[i]["preferred_deg"], unit_deg) <= hi]


tops = top_inputs(W, CURVES[0], k=6)
inputs = [i for i, _ in tops["excitatory"]] + [i for i, _ in tops["inhibitory"]]
renders = render(model, [f"{below}:{i}" for i in inputs], steps=STEPS, size=SIZE, progress=False)
plot_weight_images(W, CURVES[0], inputs, [f"{below}:{i}\n{w:+.2f}\n{curve_tag(i)}"
                                          for i, w in tops["excitatory"] + tops["inhibitory"]], renders=renders,
                   suptitle=f"inputs of {LAYER}:{CURVES[0]} (prefers {unit_deg:.0f}°): six excitatory, then six "
                            "inhibitory")
plt.show()
orientations = stimuli(model, BELOW).get("orientations", ORIENTATIONS)
input_curves = tuning_curves(model, BELOW, **stimuli(model, BELOW))[inputs]                # [12, orientations]
theta = torch.tensor(list(orientations) + [orientations[0]], dtype=torch.float64).deg2rad()
fig, axes = plt.subplots(1, len(inputs), figsize=(1.3 * len(inputs), 2.0), subplot_kw={"projection": "polar"})
for k, (ax, i) in enumerate(zip(axes, inputs)):
    ax.plot(theta, torch.cat([input_curves[k], input_curves[k][:1]]), color="C3" if k < 6 else "C0")
    ax.plot([torch.tensor(unit_deg).deg2rad()] * 2, [0, input_curves[k].max().clamp_min(1e-9)], "k--", lw=0.8)
    ax.set_title(f"{below}:{i}\npeak {input_curves[k].max():.2g}", fontsize=7)
    ax.set_xticklabels([]); ax.set_yticklabels([])
fig.suptitle(f"their tuning curves (angle: the arc's orientation; dashed: {LAYER}:{CURVES[0]}'s {unit_deg:.0f} deg)",
             fontsize=9)
plt.tight_layout(); plt.show()
print(f"excitatory inputs that are curve detectors within 30 degrees of {unit_deg:.0f}: "
      f"{curve_inputs(tops['excitatory'], 0, 30)}; inhibitory ones within 30 degrees: "
      f"{curve_inputs(tops['inhibitory'], 0, 30)}, more than 135 degrees away: "
      f"{curve_inputs(tops['inhibitory'], 135, 180)}")

# %% [markdown]
# In lite mode the renders of conv3 channels are faint ripples, stripes and textures (one inhibitory input draws
# a zig-zag edge, others dark bands): at this early layer of a small network feature visualization does not
# draw clean curves, and the tuning curves say more. They show a mixed picture. Two of the six excitatory
# inputs, the strongest among them, are conv3 curve detectors bulging within 30 degrees of the detector's own
# orientation (printed above); the other four are not curve detectors by lesson 03's criterion, and three of
# them barely answer arcs at all (peaks near 0). Among the inhibitory inputs one curve detector bulges the
# opposite way, as the story of curve circuits would have it, but another bulges the same way as the detector
# (it answers arcs only weakly) and inhibits it all the same. The strongest weights of one unit do not tell a
# clean story; the next section asks the question of every pair of curve detectors at once. (In full mode,
# InceptionV1, read the renders and the tuning curves the same way.)

# %%
if not FULL:
    weak = [k for k in range(6) if input_curves[k].max() < 0.1 * input_curves[0].max()]
    claim("two of the detector's six strongest excitatory inputs, among them the strongest, are conv3 curve "
          "detectors within 30 degrees of its orientation, and three of the others peak under a tenth of the "
          "strongest's peak; among the inhibitory inputs one conv3 curve detector bulges the opposite way (over 135 "
          "degrees apart) and one the same way (within 30 degrees)",
          lambda: len(curve_inputs(tops["excitatory"], 0, 30)) == 2 and len(weak) == 3
          and tops["excitatory"][0][0] in curve_inputs(tops["excitatory"], 0, 30)
          and len(curve_inputs(tops["inhibitory"], 135, 180)) >= 1
          and len(curve_inputs(tops["inhibitory"], 0, 30)) >= 1,
          seen=[curve_inputs(tops["excitatory"], 0, 30), weak, curve_inputs(tops["inhibitory"], 135, 180),
                curve_inputs(tops["inhibitory"], 0, 30)]);

# %% [markdown]
# ### Curves are built from curves
#
# Cammarata et al. (*Curve Circuits*, Distill 2021) found that InceptionV1's curve detectors in `mixed3b`
# are built from the earlier curve detectors of `mixed3a`: excited by those of a similar orientation,
# inhibited by those of the opposite one. The weights say so if the total weight between two curve detectors
# falls as their preferred orientations move apart. Below, every connection from a curve detector of the lower
# layer (found with lesson 03's criterion) to one of the curve detectors above: total weight against the
# difference of their preferred orientations.

# %%
from mi_course.vision.circuits import weights_by_orientation

curves_below = report_below["curve_detectors"]  # the reports of the cell above
preferred = {ch["channel"]: ch["preferred_deg"] for ch in report_above["channels"]}  # every channel's peak
pairs = weights_by_orientation(W, CURVES, [preferred[c] for c in CURVES], curves_below,
                               [report_below["preferred_deg"][c] for c in curves_below])
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.scatter(pairs["difference"], pairs["weight"], s=14)
ax.axhline(0, color="grey", lw=0.8)
ax.set_xlabel("difference of preferred orientations (degrees)"); ax.set_ylabel("total weight")
ax.set_title(f"{BELOW} curve detectors -> {LAYER} curve detectors (r = {pairs['correlation']:.2f})", fontsize=10)
plt.tight_layout(); plt.show()
if not FULL:  # the lite model; InceptionV1's answer is the paper's
    claim("in the lite model the total weight from a conv3 curve detector into a planted conv4 curve detector "
          "falls as their orientations differ (correlation below -0.25)", lambda: pairs["correlation"] < -0.25,
          seen=pairs["correlation"])

# %% [markdown]
# ## 3. Equivariance: rotated copies
#
# The curve detectors of one layer differ mainly in orientation. Olah et al. (*Naturally Occurring
# Equivariance in Neural Networks*, Distill 2020) show that in InceptionV1 they are **rotated copies** of one
# another, circuit and all: the weights into a curve detector of orientation 90 degrees look like those into
# the 0-degree detector, rotated by 90 degrees, *with each input replaced by its own rotated copy*.
#
# That last part is what makes the naive test fail. Rotating conv4's 3 x 3 kernels spatially keeps every input
# channel in place, but an input that detects a curve bulging right does not become a detector of curves
# bulging up because its kernel moved: a rotated copy of a unit reads *other* input channels. (And a 3 x 3
# kernel can only be rotated exactly by multiples of 90 degrees.) Here is the naive test on the planted
# detectors of the lite model: kernel j against kernel i rotated by the multiple of 90 degrees nearest to the
# difference of their orientations.

# %%
from mi_course.vision.circuits import disc_mask, kernel_rotation_map

lite_pref = {int(k): v for k, v in card["mechanism"]["curve_detectors"]["preferred_deg"].items()}
naive = kernel_rotation_map(lite.conv4.weight, PLANTED, [lite_pref[c] for c in PLANTED])
off = ~torch.eye(len(PLANTED), dtype=torch.bool)
print(f"rotated 3x3 kernels: mean correlation with the other detectors' kernels {naive[off].mean():.2f}")

# %% [markdown]
# The faithful test rotates the **image** instead. Rotating the input by an angle is the one transformation
# that rotates every layer below a unit at once, with each channel mapped to its rotated counterpart, without
# having to know which channel that is; and an image can be rotated by any angle. If detector j is detector i's
# copy rotated by the difference of their preferred orientations, then j sees in a rotated image what i sees in
# the original: across many images, i's responses to the originals and j's to the rotated images rise and fall
# together. To keep the rotation from cutting content off or bringing new edges in, the images are masked to
# the disc inscribed in them (`disc_mask`), the outside filled with the image's own background colour.
#
# <details><summary>Hint: the idea</summary>
#
# Compute every channel's response to the images once. For each pair (i, j), rotate the images by
# `preferred_deg[j] - preferred_deg[i]`, compute the responses again, and correlate column `channels[i]` of the
# first with column `channels[j]` of the second. Rotate `images - corner` and add `corner` back, so the corners
# that come in get the surround's colour.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `base = channel_responses(model, images, layer)`; `corner = images[:, :, :1, :1]`;
# `turned = rotate(images - corner, angle, interpolation=InterpolationMode.BILINEAR) + corner` (from
# `torchvision.transforms.functional`), clamped to [0, 1]; Pearson correlation `a - a.mean()`,
# `b - b.mean()`, `(a @ b) / (a.norm() * b.norm())`. Keep the responses of each angle in a dict: they repeat.
# </details>

# %% [exercise] 04.equivariance_map

# %%
check("04.equivariance_map")

# %% [markdown]
# The map for the curve detectors, on generated arcs, circles and lines (images the tuning curves were not
# measured with), beside two controls: the same images *not* rotated, and rotated the wrong way (by minus the
# difference). If the detectors are rotated copies, only the first map is bright everywhere.

# %%
lite_probe = disc_mask(torch.cat([class_images("arc", 32, seed=401), class_images("circle", 16, seed=402),
                                  class_images("line", 16, seed=403)]))
if FULL:  # the same drawings at twice the size, for a network trained on 224-pixel photos
    eq_model, eq_layer, eq_channels = model, LAYER, CURVES if GPU else CURVES[:4]
    eq_pref = [preferred[c] for c in eq_channels]
    probe = F.interpolate(lite_probe, size=128, mode="bilinear", align_corners=False).clamp(0, 1)
else:
    eq_model, eq_layer, eq_channels, probe = lite, "conv4", PLANTED, lite_probe
    eq_pref = [lite_pref[c] for c in eq_channels]
maps = {"rotated by the difference": equivariance_map(eq_model, eq_layer, eq_channels, eq_pref, probe),
        "not rotated": equivariance_map(eq_model, eq_layer, eq_channels, [0.0] * len(eq_channels), probe),
        "rotated the wrong way": equivariance_map(eq_model, eq_layer, eq_channels, [-p for p in eq_pref], probe)}
fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
off = ~torch.eye(len(eq_channels), dtype=torch.bool)
for ax, (name, M) in zip(axes, maps.items()):
    im = ax.imshow(M, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_title(f"{name}\nmean off-diagonal {M[off].mean():.2f}", fontsize=9)
    ax.set_xticks(range(len(eq_channels)), eq_channels, fontsize=7)
    ax.set_yticks(range(len(eq_channels)), eq_channels, fontsize=7)
fig.colorbar(im, ax=axes.tolist(), shrink=0.8); plt.show()
rotated, plain = maps["rotated by the difference"][off].mean(), maps["not rotated"][off].mean()
if not FULL:
    claim("rotating the image by the difference of preferred orientations makes the planted curve detectors "
          "agree (mean correlation at least 0.2 above the unrotated images' and above 0.8)",
          lambda: rotated > plain + 0.2 and rotated > 0.8, seen=(round(float(rotated), 3), round(float(plain), 3)))
    claim("rotating the 3x3 kernels finds no copies (mean correlation below 0.25)", lambda: naive[off].mean() < 0.25,
          seen=naive[off].mean())

# %% [markdown]
# The planted detectors were trained to be rotated versions of one idea, so their equivariance is no
# surprise. The detectors the classification task made on its own are the real test. The lite model's card lists
# thirteen more conv4 channels that meet lesson 03's criterion, but lesson 03's robustness check showed most of
# them failing it on arcs drawn another way: 14, 18, 36, 49 and others pass in under half of the 19 PIL-drawn
# cases of `mi_course.vision.drawn`, so "curve detector" describes how they answer the course's own stimuli
# more than what they detect. Below they are split by that check: the unplanted detectors that pass in at least
# half of the cases (the ones worth the name), and the fragile rest, each group asked the same question.

# %%
from mi_course.vision import drawn

unplanted = [c for c in card["mechanism"]["curve_detectors"]["channels"] if c not in PLANTED]
pil = drawn.robustness_report(lite, "conv4", unplanted, {**drawn.VARIATIONS, **drawn.COMBINED})
groups = {"robust": [c for c in unplanted if pil[c]["share"] >= 0.5],
          "fragile": [c for c in unplanted if pil[c]["share"] < 0.5][:4]}
lift = {}
for name, chans in groups.items():
    pref_deg = [lite_pref[c] for c in chans]
    together = equivariance_map(lite, "conv4", chans, pref_deg, lite_probe)
    apart = equivariance_map(lite, "conv4", chans, [0.0] * len(chans), lite_probe)
    off_n = ~torch.eye(len(chans), dtype=torch.bool)
    lift[name] = (together[off_n].mean().item(), apart[off_n].mean().item())
    print(f"{name} unplanted detectors {chans} (orientations {pref_deg}; share of PIL cases passed "
          f"{[round(pil[c]['share'], 2) for c in chans]}): rotated {lift[name][0]:.2f}, "
          f"not rotated {lift[name][1]:.2f}")
claim("the lite model's own robust (unplanted) curve detectors are rotated copies too (rotated images raise their "
      "mean correlation by at least 0.2)",
      lambda: len(groups["robust"]) >= 2 and lift["robust"][0] > lift["robust"][1] + 0.2,
      seen=(groups["robust"], [round(v, 3) for v in lift["robust"]]))
claim("so are the fragile ones, on these images drawn the course's way",
      lambda: lift["fragile"][0] > lift["fragile"][1] + 0.2, seen=[round(v, 3) for v in lift["fragile"]]);

# %% [markdown]
# Both groups come out as rotated copies of one another on the generated arcs, circles and lines. Equivariance
# on one kind of drawing says how the units relate to each other, not whether they detect curves: the fragile
# ones are rotated copies of a detector that only works on the course's renderer.

# %% [markdown]
# ## 4. Union over cases
#
# A dog's head can face left or right. Olah et al. (Zoom In, 2020) found that InceptionV1 detects the two cases
# separately in `mixed4a` (4a:222 and 325 face left, 234 and 308 right) and builds the pose-invariant dog-head
# detector **4b:418** from them: a **union over cases**. The motif makes a testable statement about the weights:
#
# * each case's pathway **excites** the union unit (positive weights from the left-facing units and from the
#   right-facing ones);
# * the two pathways **inhibit each other**: the units that still prefer one case get negative weights from the
#   other case's units.
#
# The lite model has the same motif, found by its card: fish facing left and fish facing right are drawn as two
# species (a round head and forked tail, a pointed head and fan tail), units of `conv3` prefer one facing, and
# units of `conv4` respond to both. First, which units prefer which case, measured on fresh fish images (not
# the card's): a unit prefers a case when its mean response to it is at least 3 times its response to the
# other (conv3) or 1.3 times (conv4, where the cases have been merged more; the union units are left out).

# %%
from mi_course.vision.circuits import case_units

fish_left = class_images("fish", 96, seed=4101, facing="left", fish_cases="species")
fish_right = class_images("fish", 96, seed=4102, facing="right", fish_cases="species")
image_grid(torch.cat([fish_left[:4], fish_right[:4]]), ["left"] * 4 + ["right"] * 4, size=1.4); plt.show()
UNION = card["mechanism"]["union_over_cases"]
cases3 = case_units(lite, "conv3", fish_left, fish_right, min_ratio=3.0)
cases4 = case_units(lite, "conv4", fish_left, fish_right, min_ratio=1.3, exclude=UNION["pose_invariant_units"])
print(f"conv3: {len(cases3['a'])} left-facing units, {len(cases3['b'])} right-facing; conv4 (union units left "
      f"out): {len(cases4['a'])} still prefer left, {len(cases4['b'])} right")

# %% [markdown]
# <details><summary>Hint: the idea</summary>
#
# Work with total weights `[out, in]`. The excitation from a case is the mean of row `unit` over that case's
# input columns; the inhibition from case a is the mean of the block of rows `out_b` and columns `case_a`, and
# the other way round.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `total = weights.sum((2, 3))`; `excitation = (total[unit, case_a].mean(), total[unit, case_b].mean())`;
# `a_to_b = total[out_b][:, case_a].mean()`, `b_to_a = total[out_a][:, case_b].mean()`; union when both
# excitations are `> 0`, mutual inhibition when both cross terms are `< 0`. Validate first.
# </details>

# %% [exercise] 04.union_over_cases

# %%
check("04.union_over_cases")

# %% [markdown]
# The card's pose-invariant units, each with the mean weight it gets from the left-facing conv3 units and from
# the right-facing ones. The card chose them by activity (they respond to both facings) and by their three
# strongest inputs; the question here is whether the *whole* pathways excite them.

# %%
weights4 = lite.conv4.weight.detach()
results = {u: union_over_cases(weights4, u, cases3["a"], cases3["b"], out_a=cases4["a"], out_b=cases4["b"])
           for u in UNION["pose_invariant_units"]}
both = [u for u, r in results.items() if r["union"]]
fig, ax = plt.subplots(figsize=(9, 3))
ids = list(results)
ax.bar([k - 0.2 for k in range(len(ids))], [results[u]["excitation"][0] for u in ids], 0.4, label="from left units")
ax.bar([k + 0.2 for k in range(len(ids))], [results[u]["excitation"][1] for u in ids], 0.4, label="from right units")
ax.axhline(0, color="grey", lw=0.8); ax.set_xticks(range(len(ids)), ids)
ax.set_xlabel("pose-invariant conv4 unit (card)"); ax.set_ylabel("mean total weight"); ax.legend(fontsize=8)
plt.tight_layout(); plt.show()
cross = results[ids[0]]["inhibition"]  # the same for every union unit: it is about the case units
totals4 = weights4.sum((2, 3))
baseline = (totals4[:, cases3["a"]].mean().item(), totals4[:, cases3["b"]].mean().item())
curve_units = set(card["mechanism"]["curve_detectors"]["channels"])
left_not_curves = [u for u in cases4["a"] if u not in curve_units]
print(f"excited by both pathways: {both}")
print(f"cross weights: left units -> right-preferring conv4 units {cross[0]:+.3f}, right units -> left-preferring "
      f"{cross[1]:+.3f}; for comparison, the mean weight of the left units into every conv4 unit {baseline[0]:+.3f}, "
      f"of the right units {baseline[1]:+.3f}")
print(f"right units -> the left-preferring units that are not curve detectors: "
      f"{totals4[left_not_curves][:, cases3['b']].mean():+.3f}")
claim("at least two of the card's pose-invariant units are excited by both whole pathways",
      lambda: len(both) >= 2, seen=both)
claim("the pathways inhibit each other: both cross weights are negative, and each is below the same units' mean "
      "weight into all of conv4", lambda: results[ids[0]]["mutual_inhibition"] and cross[0] < baseline[0]
      and cross[1] < baseline[1], seen=[round(float(v), 3) for v in (*cross, *baseline)]);

# %% [markdown]
# The motif is there, but less tidy than the story. Only a few of the units the card calls pose-invariant are
# excited by the *average* left and right unit; the others take one case from a handful of strong inputs and are
# even inhibited by the rest of that pathway. The left units inhibit most of conv4 (their mean weight is
# negative), so their inhibition of the right-preferring units counts only because it is stronger than that.
# And the left-preferring conv4 units include several curve detectors (the left-facing species has a round
# head): without them, the right units' inhibition of the left pathway mostly vanishes. Comparing with a
# baseline like this is what keeps a motif from being read into weights that would show it anyway.
#
# In full mode, the same test on InceptionV1's dog heads: the expanded weights from `mixed4a` into `mixed4b`
# (4b:418 is in its 5x5 branch), and its strongest inputs. Zoom In's dog-circuit figure names the oriented dog
# heads of `mixed4a`: 222 and 325 face left, 234 and 308 face right. Mirroring their feature visualizations is
# a check of that split that needs no labels (a left-facing unit's mirrored image should excite its
# right-facing partner); the cell prints whether the two agree.

# %%
if FULL:
    W4b, _ = layer_weights(model, "mixed4b")
    DOGS_LEFT, DOGS_RIGHT = [222, 325], [234, 308]  # Zoom In, the dog-circuit figure
    DOGS = DOGS_LEFT + DOGS_RIGHT
    print("4b:418 is", inception_channel(model, "mixed4b", 418))
    strongest = top_inputs(W4b, 418, k=10)
    print("strongest excitatory inputs of 4b:418:", [i for i, _ in strongest["excitatory"]])
    dog_renders = render(model, [f"mixed4a:{u}" for u in DOGS], steps=STEPS, size=SIZE, progress=False)
    from mi_course.vision.circuits import mirror_split

    side_a, side_b = mirror_split(model, "mixed4a", DOGS, dog_renders)
    image_grid(torch.cat([dog_renders, dog_renders.flip(-1)]), [f"4a:{u}" for u in DOGS] +
               [f"4a:{u} mirrored" for u in DOGS], cols=4, size=2); plt.show()
    agrees = {frozenset(side_a), frozenset(side_b)} == {frozenset(DOGS_LEFT), frozenset(DOGS_RIGHT)}
    print(f"mirror split {side_a} | {side_b}: {'the same as' if agrees else 'not'} the paper's left {DOGS_LEFT} | "
          f"right {DOGS_RIGHT}")
    dog = union_over_cases(W4b, 418, DOGS_LEFT, DOGS_RIGHT)
    print(f"facing left {DOGS_LEFT} and right {DOGS_RIGHT}: mean weight into 4b:418 {dog['excitation'][0]:+.4f} "
          f"and {dog['excitation'][1]:+.4f} (union: {dog['union']})")
    plot_weight_images(W4b, 418, DOGS, [f"4a:{u}" for u in DOGS], suptitle="expanded weights 4a -> 4b:418")
    plt.show()

# %% [markdown]
# ## 5. Polysemanticity
#
# Some units respond to things that have nothing in common. Olah et al.'s example is InceptionV1's 4e:55, which
# responds to cat faces, the fronts of cars and cat legs (Zoom In, 2020). Such **polysemantic** units are what
# lesson 08's toy models predict when a network has more features to represent than units: features in
# **superposition** share units, each unit then answering to several features (Elhage et al., *Toy Models of
# Superposition*, 2022). For interpretability they are a nuisance: a unit's name no longer says what it does.
#
# In the lite model the ten generated classes play the part of the labelled data set. The report below asks,
# for every unit, which classes it answers to far more than to the average class.
#
# <details><summary>Hint: the idea</summary>
#
# Average each unit's responses over the images of each class: a matrix `[units, classes]`. The baseline is the
# mean of a unit's row (each class once, however many images it has). A class counts when its mean is positive,
# at least `min_ratio` times the baseline and at least `min_share` of the row's largest entry.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `m = torch.stack([responses[labels == k].mean(0) for k in range(len(classes))], dim=1)` (check every class has
# images first); `ok = (m > 0) & (m >= min_ratio * m.mean(1, keepdim=True)) & (m >= min_share * m.max(1,
# keepdim=True).values)`; for each unit, the classes in `torch.sort(m[u], descending=True, stable=True)` order
# that are `ok`.
# </details>

# %% [exercise] 04.polysemanticity_report

# %%
check("04.polysemanticity_report")

# %%
images, labels, _ = generate(1000, seed=4201, fish_cases="species")
poly = polysemanticity_report(channel_responses(lite, images, "conv4"), labels, CLASSES)
print(f"{len(poly['polysemantic'])} of 128 conv4 units respond to two classes or more, for example:")
for u in poly["polysemantic"][:8]:
    print(f"  conv4:{u}: {', '.join(poly['responds_to'][u])}")
shown = poly["polysemantic"][:12]
fig, ax = plt.subplots(figsize=(7, 4))
means = poly["class_means"][shown]
ax.imshow(means / means.max(1, keepdim=True).values, cmap="magma", aspect="auto")
ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=45, fontsize=8); ax.set_yticks(range(len(shown)), shown)
ax.set_title("mean response per class (each unit scaled to its strongest class)", fontsize=10)
plt.tight_layout(); plt.show()

# %% [markdown]
# Responding to two classes is not yet polysemanticity. Many of these units answer to circles and fish: the
# generator draws a fish with a round head and an eye, so a unit for round things answers to both, one feature
# in two classes. `SHARED_PARTS` lists the pairs of classes the generator builds from the same parts.

# %%
from mi_course.vision.circuits import SHARED_PARTS

print("pairs that share parts:", sorted(tuple(sorted(p)) for p in SHARED_PARTS))

# %% [markdown]
# ### Investigation: a polysemantic unit
#
# Find a `conv4` unit of the lite model that responds to two classes which share no part. Return the unit and
# the two class names. The test draws its own images and checks the unit's responses: to each of your classes at
# least twice its mean response over the other eight classes, and at least half its strongest class. Any method
# that finds one works; your report is a good start, but check your pair on images of your own.
#
# <details><summary>Hint: the idea</summary>
#
# Each unit's mean response per class is a small table, and the test's conditions are inequalities on one row
# of it. Search every unit and every pair of classes that share no part for the row that meets them with the
# most room to spare, rather than the first that scrapes through: the test draws images you never saw.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# Draw a thousand or more images with `generate(..., fish_cases="species")` and a seed of your own, take
# `channel_responses(model, images, layer)` and the report's `class_means` (`[units, classes]`). For each unit
# and each pair `(a, b)` not in `SHARED_PARTS`, the margin is the smallest of: each class's mean over twice the
# mean of the other eight, and each class's mean over half the unit's largest class mean. Keep the best; return
# `(int(unit), class_a, class_b)`.
# </details>

# %% [exercise] 04.polysemantic_unit

# %%
check("04.polysemantic_unit")

# %% [markdown]
# The unit's favourite images from each of its two classes, among fresh ones: two different things, one unit.

# %%
unit, class_a, class_b = polysemantic_unit(lite)
fresh = {c: class_images(c, 64, seed=4301 + k) for k, c in enumerate((class_a, class_b))}
best = []
for c, imgs in fresh.items():
    r = channel_responses(lite, imgs, "conv4")[:, unit]
    best += [imgs[i] for i in r.argsort(descending=True)[:4]]
image_grid(best, [class_a] * 4 + [class_b] * 4, size=1.5, suptitle=f"conv4:{unit}: top images of two classes")
plt.show()

# %% [markdown]
# Are your two classes really unrelated? The test rules out parts the generator shares, not every idea the two
# might share: rings and filled polygons, say, are both closed outlines. Deciding whether a unit is
# polysemantic or detects something more abstract that you have not named is the question Olah et al. faced
# with 4e:55, and it is answered the way this lesson answers everything: look at what drives the unit (its
# inputs, its feature visualization, its dataset examples) and test the story on inputs it was not built from.

# %% [markdown]
# In full mode, 4e:55 itself. A single feature visualization shows one way to excite a unit; with a diversity
# term (lesson 01) the batch has to find several, and for a polysemantic unit they differ in kind.

# %%
if FULL:
    from lucent.optvis import objectives

    variety = render(model, objectives.channel("mixed4e", 55) - 1e2 * objectives.diversity("mixed4e"), batch=4,
                     steps=STEPS, size=SIZE, progress=False)
    image_grid(variety, ["mixed4e:55"] * 4, size=2.5); plt.show()

# %% [markdown]
# ## 6. Universality
#
# If features are the natural units of a network, different networks trained on similar data should find the
# same ones. Olah et al. state it as the third claim of Zoom In (2020), and curve detectors are its best
# evidence: Zoom In's universality figure shows curve detectors in AlexNet, VGG19 and ResNetV2-50 as well as
# InceptionV1 (full mode here uses torchvision's ResNet-50, which is v1.5, not the ResNetV2-50 of that figure). The test
# needs **one criterion** applied to every model on the **same stimuli**: lesson 03's `curve_detector_report`. Then
# compare what each model has: which orientations, and whether every orientation one model covers is covered by the
# other (`matching[a][b]`: over a's detectors, the mean distance to the nearest of b's).
#
# <details><summary>Hint: the idea</summary>
#
# A loop over the triples: run the report, keep its detectors and their orientations, count them in eight bins
# centred on 0, 45, ..., 315 degrees. Then for every ordered pair of models, average over a's detectors the
# angular distance (the short way round) to the nearest of b's.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `report = curve_detector_report(model, layer, **kwargs)`; bin `int(math.floor((d + 22.5) / 45)) % 8`;
# distance `min(abs(x - y) % 360, 360 - abs(x - y) % 360)`; `None` when a model has no detector. Reject an
# empty list and repeated names.
# </details>

# %% [exercise] 04.compare_tuning_across_models

# %%
check("04.compare_tuning_across_models")

# %% [markdown]
# The models of the comparison: in full mode InceptionV1, AlexNet, ResNet-50 and VGG19 at the layer where each
# is searched for curve detectors (InceptionV1's mixed3b, the others at a comparable depth; the model registry
# records the choice); in lite mode the course's CNNs `vision` and `vision-b` and, where it is shipped, the
# residual CNN `vision-c`. Each model's preferred orientations on one ring. The criterion is lesson 03's, on
# the course's own stimuli, so in lite mode the counts include the fragile detectors that lesson 03's
# robustness check rejects (most of `vision`'s 13 unplanted ones, above). In lite mode every model gets the
# same default arcs; in full mode each network gets lesson 03's arcs sized to its own layer's receptive field
# (printed: about 91 px for InceptionV1 and ResNet-50, about 50 for AlexNet and VGG19), so the stimuli are the
# same *relative to what a unit sees*. Then `compare_tuning_across_models` runs once per model, and the matching
# between them comes from the course's `orientation_matching`, the same measure as yours.

# %%
from mi_course.vision.circuits import orientation_matching, plot_preferred_orientations, universality_set
from mi_course.vision.receptive_field import receptive_field

entries = [(role, model if role == "vision" else load_model(role), layer) for role, layer in universality_set()]
if FULL:  # each network on stimuli sized to its own layer's field: one call per model, then the matching
    found = {}
    for role, m, layer in entries:
        print(f"{role}: {layer}'s field {receptive_field(m, layer).size} px; stimuli {stimuli(m, layer)}")
        found.update(compare_tuning_across_models([(role, m, layer)], **stimuli(m, layer))["models"])
    comparison = {"models": found, "matching": orientation_matching(found)}
else:     # lite: one call, every CNN on the course's default stimuli (lesson 03's)
    comparison = compare_tuning_across_models(entries)
for name, m in comparison["models"].items():
    print(f"{name:9s} {m['layer']:18s} {len(m['curve_detectors']):3d} curve detectors of {m['n_channels']}, "
          f"quadrants {m['quadrants']}, histogram {m['histogram']}")
for a, row in comparison["matching"].items():
    print(f"  from {a}: " + ", ".join(f"to {b} {d:.0f} deg" if d is not None else f"to {b} -" for b, d in row.items()))
plot_preferred_orientations(comparison); plt.show()
if not FULL:
    claim("every lite model has curve detectors in all four quadrants", lambda: all(
        m["quadrants"] == [0, 1, 2, 3] for m in comparison["models"].values()),
        seen={name: m["quadrants"] for name, m in comparison["models"].items()})
    claim("each lite model's orientations have counterparts in the others (mean nearest distance below 30 "
          "degrees)", lambda: all(d is not None and d < 30 for row in comparison["matching"].values()
                                  for d in row.values()),
          seen=[d if d is None else round(d) for row in comparison["matching"].values() for d in row.values()])

# %% [markdown]
# The microscope of lesson 03 over the same models: pick a model and one of its curve detectors from the
# lists above, and compare its render, dataset examples and tuning curve with a detector of the same
# orientation in another network. Universality says they should look alike.

# %%
from mi_course.explorers.microscope import microscope

first = next(iter(comparison["models"].values()))
microscope({name: m for name, m, _ in entries}, layers={name: [layer] for name, _, layer in entries},
           channel=int(first["curve_detectors"][0]) if len(first["curve_detectors"]) else 0)

# %% [markdown]
# ## What you built
#
# * `expanded_weights`: the linear part of a circuit between layers that are not directly connected;
#   `top_inputs`: what excites and inhibits a unit, read as weight images;
# * curve circuits: earlier curves of similar orientation excite, opposite ones inhibit;
# * `equivariance_map`: rotated copies found by rotating the input, after seeing why rotating the kernels
#   alone cannot find them;
# * `union_over_cases`: the union motif tested in the weights, with a baseline that shows where the story is
#   tidier than the weights;
# * `polysemanticity_report` and a polysemantic unit of your own, the first sign of superposition (lesson 08);
# * `compare_tuning_across_models`: one criterion over several networks, the test universality needs.
#
# Part II moves from images to text: transformers, where the same ideas (features, circuits, weights read as
# programs) get an exact algebra (lesson 05).
