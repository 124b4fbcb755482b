# %% [markdown]
# # 01 Feature visualization
#
# A unit inside a vision network computes one number per position. What makes that number large? One
# answer comes from the data: look at the images that excite the unit most (lesson 03). Another comes from
# the network itself: **start from noise and change the image, by gradient ascent, until the unit fires as
# hard as it can**. The image you end with is a *feature visualization* (Olah, Mordvintsev and Schubert,
# *Feature Visualization*, Distill 2017; Erhan et al. 2009 first did it for single units).
#
# Done naively it gives noise that excites the unit through tiny high-frequency patterns. Three fixes make
# the pictures readable, and you build each one:
#
# 1. read a layer's activations and turn them into **objectives**: a channel, a neuron, a direction
#    (`get_activations`, `channel_objective`, `neuron_objective`);
# 2. a **Fourier parameterization** that makes every frequency equally easy to change (`fourier_image`);
# 3. **transformation robustness**: jitter the image at every step, so the picture has to work wherever it
#    sits (`jitter`), and your own optimization loop (`visualize`), compared with the course's engine
#    `mi_course.vision.render` (and lucent's `render_vis` in full mode);
# 4. **diversity**: several different images for one channel (`diversity_objective`);
# 5. an investigation: can you make an image the model is sure of (`convincing_image`)?
#
# In full mode the model is lucent's InceptionV1 (GoogLeNet trained on ImageNet, the network of the Distill
# articles) and the channels are the curve detectors of its layer `mixed3b` (Cammarata et al., *Curve
# Detectors*, Distill 2020). In lite mode it is the course's small CNN `vision`, trained on generated images
# of arcs, lines, shapes and fish; its layer `conv4` has curve detectors too (lesson 03 asks how good they are:
# in this model they were encouraged by an extra training objective, its card says how).

# %% [setup]

# %%
import matplotlib.pyplot as plt
import torch

from mi_course import check, claim, get_mode, load_model, model_card
from mi_course.vision.image_plots import image_grid

torch.set_num_threads(1)  # small convolutions: one thread is about as fast
FULL, GPU = get_mode() == "full", torch.cuda.is_available()
model = load_model("vision")
if FULL:  # lucent's InceptionV1 (its head needs 224 px); curve detectors of mixed3b (Cammarata et al. 2020)
    LAYER, CURVES, LOGITS, SIZE = "mixed3b", [379, 406, 385, 343], "softmax2_pre_activation_matmul", 224
    BELOW = "mixed3a"  # the layer under LAYER
else:     # the course's CNN; the card lists its curve detectors
    LAYER, BELOW, LOGITS, SIZE = "conv4", "conv3", "fc", 64
    CURVES = model_card("vision")["mechanism"]["curve_detectors"]["stretch_channels"][:4]
# optimization steps: a CPU runs InceptionV1 slowly, so full mode without a GPU takes only a few
STEPS = (256 if GPU else 4) if FULL else 128
print(f"{type(model).__name__}: layer {LAYER}, curve channels {CURVES}, {STEPS} steps at {SIZE} px")

# %% [markdown]
# ## 1. Activations and objectives
#
# Everything starts with reading a layer. PyTorch gives no direct access to the inside of a forward pass,
# but a **forward hook** on a module is called with the module's output: keep it, and remove the hook again
# (a forgotten hook slows every later call and keeps tensors alive). Two details matter for feature
# visualization:
#
# * **input scaling.** Models expect their own input range. The lite CNNs take RGB in [0, 1]; lucent's
#   InceptionV1 was ported from TensorFlow and wants `x * 255 - 117`. `input_transform(model)` (from
#   `mi_course.vision.featurevis`) is the function for each model; apply it to the images first.
# * **gradients.** Feature visualization differentiates the activation with respect to the image: no
#   `torch.no_grad()` here.
#
# <details><summary>Hint: the idea</summary>
#
# Check the images, find the module with `model.get_submodule(layer)` (turn its `AttributeError` into a
# `ValueError` that lists `model.named_modules()`), register a hook that appends the output to a list, run
# the model on the scaled images, remove the hook in a `finally`, return what the hook caught.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `handle = module.register_forward_hook(lambda mod, inputs, output: caught.append(output))`, then
# `try: model(input_transform(model)(images.to(device)))` / `finally: handle.remove()`, and `return caught[0]`;
# `device = next(model.parameters()).device`.
# </details>

# %% [exercise] 01.get_activations

# %%
check("01.get_activations")

# %% [markdown]
# Four arcs, bulging right, up, left and down (lesson 03 draws them itself), and the map of one curve channel
# over each: the channel is a grid of detectors, one per position. You should see it light up near the
# centre of the map, where the arc is, for one or two of the four orientations only.

# %%
from mi_course.vision.stimuli import curve_stimulus

ORIENTATIONS = (0, 90, 180, 270)
examples = torch.stack([curve_stimulus(o, radius=10, size=SIZE) for o in ORIENTATIONS])
maps = get_activations(model, examples, LAYER)[:, CURVES[0]].detach().cpu()
fig, axes = plt.subplots(2, 4, figsize=(8, 4))
for i, o in enumerate(ORIENTATIONS):
    axes[0, i].imshow(examples[i].permute(1, 2, 0)); axes[1, i].imshow(maps[i], cmap="magma", vmin=0)
    axes[0, i].set_title(f"arc {o} deg", fontsize=9); axes[1, i].set_title(f"max {maps[i].max():.2f}", fontsize=9)
for ax in axes.flat:
    ax.axis("off")
fig.suptitle(f"{LAYER}:{CURVES[0]}"); plt.tight_layout(); plt.show()

# %% [markdown]
# ### Objectives
#
# An **objective** says what to make large. As in lucent, it is a function of `T`, where `T(layer)` gives a
# layer's activations, and it returns a **loss to minimize**: to excite something, return minus it.
#
# * a **channel**: minus the channel's mean over the batch and every position (the feature anywhere);
# * a **neuron**: minus one position of one channel (the feature at one place, by default the centre).
#
# <details><summary>Hint: the idea</summary>
#
# Both return a closure `objective(T)`. Check the channel when the objective is made (an int >= 0) and
# against `acts.shape[1]` when it is called. The channel axis is axis 1; rows come before columns.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# Channel: `acts = T(layer)`; `return -acts[:, channel].mean()`. Neuron: `_, c, h, w = acts.shape`,
# `col = w // 2 if x is None else x`, `row = h // 2 if y is None else y`, check `0 <= col < w` and
# `0 <= row < h`, `return -acts[:, channel, row, col].mean()`.
# </details>

# %% [exercise] 01.channel_objective

# %%
check("01.channel_objective")

# %% [exercise] 01.neuron_objective

# %%
check("01.neuron_objective")

# %% [markdown]
# The objectives read the same activations as before: on the four arcs the channel objective is minus the
# mean of the maps above, a neuron objective minus their values at one position. By default that position
# is the map's centre, but nothing makes the centre the unit that sees the arc best: in lite mode the map
# that lights up above peaks one unit right of it, and the centre neuron reads nothing. So where this lesson
# renders one neuron of this channel (*Neurons and directions*, section 4), it takes the one at the channel's
# **peak** on the arcs (`PEAK_X`, `PEAK_Y`); the cell prints both.

# %%
T = lambda layer: get_activations(model, examples, layer)  # noqa: E731
h, w = maps.shape[-2:]
PEAK_Y, PEAK_X = divmod(int(maps.amax(0).argmax()), w)  # where the channel answers the arcs most
print(f"channel {CURVES[0]}: {channel_objective(LAYER, CURVES[0])(T).item():.3f}; "
      f"its centre neuron (x={w // 2}, y={h // 2}): {neuron_objective(LAYER, CURVES[0])(T).item():.3f}; "
      f"its neuron at the peak (x={PEAK_X}, y={PEAK_Y}): "
      f"{neuron_objective(LAYER, CURVES[0], x=PEAK_X, y=PEAK_Y)(T).item():.3f}")

# %% [markdown]
# ## 2. Naive pixel ascent gives noise
#
# The simplest visualization optimizes the pixels themselves. The course's engine `render` does it with
# `param="pixel"` and `transforms="none"`. It does excite the channel, but with a speckle of fine, high-
# frequency patterns: the gradient of a network with respect to its input is itself high-frequency, and
# nothing keeps the image from following it. The same channel rendered with the two fixes this lesson builds
# (a Fourier parameterization and random jitter) looks like something.

# %%
from mi_course.vision.featurevis import render

naive = render(model, f"{LAYER}:{CURVES[0]}", steps=STEPS, size=SIZE, param="pixel", transforms="none")
fixed = render(model, f"{LAYER}:{CURVES[0]}", steps=STEPS, size=SIZE)
image_grid([naive[0], fixed[0]], ["pixels, no transforms", "Fourier + transforms"], size=3); plt.show()

# %% [markdown]
# One number for "speckle": the mean squared difference between neighbouring pixels. You should see the
# naive image carry clearly more of it.

# %%
def speckle(image):
    return ((image[..., 1:, :] - image[..., :-1, :]) ** 2).mean() + ((image[..., 1:] - image[..., :-1]) ** 2).mean()


print(f"speckle: pixels {speckle(naive):.4f}, Fourier + transforms {speckle(fixed):.4f}")
claim("naive pixel ascent's image has at least 1.5 times the neighbour-pixel energy of the Fourier render",
      lambda: speckle(naive) > 1.5 * speckle(fixed), seen=speckle(naive) / speckle(fixed));

# %% [markdown]
# ### ...and brittle
#
# Is the noise a feature or an accident? Move the picture and ask the same neuron again. Below, each curve
# channel's **centre neuron** gets one naive render and one Fourier render, and `shift_kept` (from
# `mi_course.vision.shift`) rolls each image by 1 to 8 pixels (right, left, down, up) and reports the
# fraction of the neuron's activation left. The pattern then arrives a few pixels from where the neuron
# looks, so some loss is expected; what matters is the shape of the curve.
#
# In lite mode you should see the Fourier render fall smoothly, keeping more than half of its activation up
# to 4 pixels, while the naive render drops below half after a single pixel and then zig-zags: it recovers
# at even shifts, most at 4 pixels. `vision` has a 2x2 max pool after each of conv1, conv2 and conv3, so its
# units sit on grids of 2, 4 and 8 pixels; a naive pattern that depends on the phase of those grids partly
# works again whenever a shift lines it up once more. A picture that excites a neuron only at some offsets
# of a pixel grid is the accident; the Fourier render does not care about the grid. (So 4 pixels alone
# would be a poor test here: at that one shift, the two renders keep about as much.)

# %%
from lucent.optvis import objectives

from mi_course.vision.shift import shift_kept

SHIFTS = range(1, 9)
neurons = [objectives.neuron(LAYER, c) for c in CURVES]
renders = {"pixels, no transforms": render(model, neurons, steps=STEPS, size=SIZE, param="pixel", transforms="none"),
           "Fourier + transforms": render(model, neurons, steps=STEPS, size=SIZE)}
kept = {name: shift_kept(model, images, LAYER, CURVES, SHIFTS) for name, images in renders.items()}  # [shift, channel]
for (name, k), colour in zip(kept.items(), ("tab:red", "tab:blue")):
    plt.plot([0, *SHIFTS], [1, *k.nanmedian(1).values], "o-", color=colour, label=f"{name} (median)")
    plt.plot([0, *SHIFTS], torch.cat([torch.ones(1, len(CURVES)), k]), color=colour, alpha=0.25, lw=1)
plt.axhline(0.5, color="grey", ls=":"); plt.xlabel("shift (pixels)"); plt.ylabel("centre activation kept")
plt.title(f"{LAYER}, {len(CURVES)} curve neurons"); plt.legend(); plt.show()

# %%
naive_kept, fourier_kept = kept.values()
if not FULL:  # measured on `vision`; InceptionV1 has other layers and grids: in full mode, look at the curves
    claim("naive renders keep less than half of their activation after a 1- or 3-pixel shift (median)",
          lambda: naive_kept[[0, 2]].median(1).values.lt(0.5).all(), seen=naive_kept[[0, 2]].median(1).values)
    claim("Fourier renders keep more than half after shifts of 1 to 4 pixels (median)",
          lambda: fourier_kept[:4].median(1).values.gt(0.5).all(), seen=fourier_kept[:4].median(1).values)
    claim("every naive render keeps more at 4 pixels than at 3 or at 5 (it zig-zags with the pooling grid)",
          lambda: (naive_kept[3] > naive_kept[[2, 4]].amax(0)).all(),
          seen=(naive_kept[3] - naive_kept[[2, 4]].amax(0)).min())  # the smallest margin

# %% [markdown]
# ## 3. A Fourier parameterization
#
# Natural images have most of their energy at low spatial frequencies (their power falls roughly like
# $1/f^2$). Pixels make the opposite easy: one gradient step changes a pixel as much as it changes a broad
# patch. So optimize the image's **Fourier spectrum** instead, scaled so that each coefficient's step moves
# the image by what a natural image would: coefficient at frequency $f$ times $1/f$ (`decay=1`). A sigmoid
# then maps the image into [0, 1]. (Lucent also *decorrelates colour*: it optimizes in a colour basis
# learned from ImageNet; the engine does, your version need not.)
#
# <details><summary>Hint: the idea</summary>
#
# The parameter is the spectrum of a real image: `torch.fft.rfft2` gives `size // 2 + 1` columns, and a
# complex number is two reals, so `[batch, 3, size, size // 2 + 1, 2]`. The frequency grid is
# `fftfreq(size)` down the rows and `rfftfreq(size)` across the columns; floor it at `1 / size` so that the
# constant term has a finite scale.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `spectrum = (torch.randn(shape, generator=g) * sd).requires_grad_()`;
# `f = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2).clamp(min=1 / size)`, `scale = 1 / f ** decay`;
# `image()` returns `torch.sigmoid(torch.fft.irfft2(torch.view_as_complex(spectrum) * scale, s=(size, size),
# norm="ortho"))`.
# </details>

# %% [exercise] 01.fourier_image

# %%
check("01.fourier_image")

# %% [markdown]
# What does the parameterization prefer? Below, one random spectrum (the same seed) under three values of
# `decay`. A larger `decay` boosts the low frequencies more, and so also makes the image's contrast larger:
# at a fixed `sd` of 1 the sigmoid would saturate into black, white and pure colours. So each sample gets the
# `sd` that gives its pixels a standard deviation of about 0.2 (the sigmoid then stays in its near-linear
# part), and the three differ only in how their variation spreads over frequencies. One number per image:
# the correlation between neighbouring pixels (0 for pixel noise, near 1 for smooth shapes).
#
# You should see mostly pixel noise at `decay` 0.5, broad colour blotches with a fine grain on top at 1.0
# (the engine's and lucent's choice, the $1/f$ of natural images), and smooth blobs at 1.5.

# %%
def neighbour_correlation(image):
    centred = image - image.mean(dim=(-2, -1), keepdim=True)
    across = (centred[..., 1:] * centred[..., :-1]).mean() + (centred[..., 1:, :] * centred[..., :-1, :]).mean()
    return (across / 2 / centred.pow(2).mean()).item()


DECAYS, samples, titles = (0.5, 1.0, 1.5), [], []
for d in DECAYS:
    sd = 0.01 * 0.2 / fourier_image(SIZE, decay=d, seed=0)[1]().std().item()  # at sd 0.01 the sigmoid is near-linear
    samples.append(fourier_image(SIZE, sd=sd, decay=d, seed=0)[1]()[0].detach())
    titles.append(f"decay {d} (sd {sd:.2f})\nneighbours {neighbour_correlation(samples[-1]):.2f}")
image_grid(samples, titles, size=2.5); plt.show()
correlations = [neighbour_correlation(x) for x in samples]
claim("a larger decay makes neighbouring pixels more alike (their correlation rises with it)",
      lambda: correlations[0] < correlations[1] < correlations[2], seen=[round(c, 3) for c in correlations]);

# %% [markdown]
# ## 4. Transformation robustness and your own loop
#
# A pattern that excites a channel only at one exact pixel offset is an adversarial accident, not a
# feature. **Jitter** shifts the image by a few random pixels before every step, so only patterns that work
# wherever they sit survive. (Lucent's standard transforms also scale and rotate a little.)
#
# <details><summary>Hint: the idea</summary>
#
# Draw two integers from `-max_shift` to `max_shift` inclusive, one for the rows and one for the columns,
# with the generator you are given, and roll the whole batch by them on the last two axes.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `dy, dx = torch.randint(-max_shift, max_shift + 1, (2,), generator=generator).tolist()`;
# `return torch.roll(images, shifts=(dy, dx), dims=(-2, -1))`.
# </details>

# %% [exercise] 01.jitter

# %%
check("01.jitter")

# %% [markdown]
# ### `visualize`: the loop
#
# Now put the pieces together: a Fourier image, Adam, and at each step a jittered image, the objective on
# it, a backward pass and an optimizer step. One more detail decides whether it works at all. A channel that
# is silent on the grey starting image has zero gradient through its ReLU, so plain gradient ascent never
# starts. Lucid's authors fixed this for InceptionV1 by *redirecting* the ReLU's gradient where its input is
# negative; `redirected_relu(model)` does that for the length of a `with` block.
#
# <details><summary>Hint: the idea</summary>
#
# Leave the model as you found it. Remember its mode (`model.training`) and its parameters' `requires_grad`,
# then put it in eval mode and freeze the parameters for the loop, and restore both in a `finally` (so that
# an objective that raises does not leave the model changed). Loop `steps` times inside
# `with redirected_relu(model):`. The objective reads the layers of the jittered image through
# `T = lambda layer: get_activations(model, shifted, layer)`.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `params, image = fourier_image(size, seed=seed)`; `opt = torch.optim.Adam(params, lr=lr)`;
# `g = torch.Generator().manual_seed(seed)`; `was_training = model.training`,
# `flags = [(p, p.requires_grad) for p in model.parameters()]`, `model.eval()`, `p.requires_grad_(False)` for
# each; then `try:` each step `opt.zero_grad()`, `shifted = jitter(image(), shift, g)`,
# `objective(lambda layer: get_activations(model, shifted, layer)).backward()`, `opt.step()`;
# `finally: model.train(was_training)` and `p.requires_grad_(flag)` for each; return `image().detach()`.
# </details>

# %% [exercise] 01.visualize

# %%
check("01.visualize")

# %% [markdown]
# Your loop beside the engine's, for the curve channels (and, in full mode, lucent's `render_vis`). You
# should see each channel's image carry arcs of one orientation, the same orientation in both rows, though
# the colours differ (the engine decorrelates colour and uses lucent's scale and rotation jitter too).

# %%
mine = [visualize(model, channel_objective(LAYER, c), size=SIZE, steps=STEPS)[0] for c in CURVES]
engine = render(model, [f"{LAYER}:{c}" for c in CURVES], steps=STEPS, size=SIZE)
image_grid(mine + list(engine), [f"yours {c}" for c in CURVES] + [f"engine {c}" for c in CURVES], cols=4,
           size=2.2); plt.show()

# %%
from mi_course.vision.tuning import channel_responses

ranked = channel_responses(model, torch.stack(mine), LAYER)[:, CURVES]
print("each image's response (rows: your image for channel ..., columns: channel)\n", ranked.numpy().round(2))
claim("each of your curve visualizations excites its own channel more than the other three do",
      lambda: bool((ranked / ranked.amax(0)).argmax(1).eq(torch.arange(len(CURVES))).all()),
      seen=(ranked / ranked.amax(0)).argmax(1).tolist());  # the channel each image excites most, by rank

# %%
if FULL:  # lucent's own loop, for comparison: the same objective and steps
    from lucent.optvis import render as lucent_render

    theirs = lucent_render.render_vis(model, f"{LAYER}:{CURVES[0]}", thresholds=(STEPS,), show_image=False,
                                      progress=False)[-1][0]
    image_grid([mine[0], engine[0], torch.tensor(theirs).permute(2, 0, 1)], ["yours", "engine", "lucent"],
               size=3); plt.show()

# %% [markdown]
# ### Neurons and directions
#
# A channel objective rewards the feature anywhere; a **neuron** objective rewards it at one position (here
# the channel's peak on the arcs, from section 1), so the picture concentrates around that position and fades
# out beyond the neuron's receptive field. In lite mode you should see a few concentric strokes whose middle
# bulges to the right, like the arc at 0 degrees that the channel answers most; mirrored left to right, the
# same picture leaves the neuron silent (the cell prints both). A **direction** objective rewards a
# combination of channels: here the sum of two curve detectors' directions, which asks for both features in
# one image. Lucent's `objectives.direction` and `objectives.neuron` do these; the engine takes them as they
# are.

# %%
n_channels = get_activations(model, examples[:1], LAYER).shape[1]
both = torch.zeros(n_channels)
both[CURVES[:2]] = 1.0
kinds = [objectives.neuron(LAYER, CURVES[0], x=PEAK_X, y=PEAK_Y), objectives.direction(LAYER, both)]
shown = render(model, kinds, steps=STEPS, size=SIZE)
image_grid(shown, [f"neuron {CURVES[0]} at x={PEAK_X}, y={PEAK_Y}", f"direction {CURVES[:2]}"], size=3); plt.show()
with torch.no_grad():
    mirrored = get_activations(model, torch.stack([shown[0], shown[0].flip(-1)]), LAYER)[:, CURVES[0], PEAK_Y, PEAK_X]
print(f"neuron {CURVES[0]} at x={PEAK_X}, y={PEAK_Y}: {mirrored[0]:.1f} on its picture, {mirrored[1]:.1f} on the "
      "picture mirrored left to right")

# %% [markdown]
# ## 5. Diversity
#
# One image shows one way to excite a channel. A channel may respond to several things (or to one thing in
# several poses), and an optimizer finds the easiest. Optimizing a batch of images together with a penalty
# for looking alike shows more. "Alike" is measured by **style**: the Gram matrix of a layer's activations,
# which says which channels fire together wherever they fire (Gatys et al.'s style loss, used this way by
# Olah et al. 2017).
#
# <details><summary>Hint: the idea</summary>
#
# Flatten the positions: `[batch, channels, h * w]`. Multiply each image's matrix by its transpose to get a
# `[channels, channels]` Gram matrix per image, flatten and normalize those to unit length, and average the
# dot products of every pair of *different* images.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `flat = acts.flatten(2)`; `grams = F.normalize((flat @ flat.transpose(1, 2)).flatten(1), dim=1)`;
# `sim = grams @ grams.T`; `return (sim.sum() - sim.diagonal().sum()) / (batch * (batch - 1))`.
# </details>

# %% [exercise] 01.diversity_objective

# %%
check("01.diversity_objective")

# %% [markdown]
# Four images of one channel, without and with the diversity term (the engine takes your objective wrapped as
# a lucent `Objective`). The style is compared one layer below the channel's (`BELOW`): at the channel's own
# layer a strong penalty can be met by switching the channel off.
#
# The weight (`DIVERSITY`) is a trade, and it depends on the model. Too small, and the four stay nearly one
# image (in lite mode at 0.5, three of the four still look alike, Gram similarity above 0.96 between them);
# too large, and some images give up the channel to be different (at 5, three of four keep under a tenth of
# their activation). In lite mode 1.5 keeps both here: no two images alike, each still clearly exciting the
# channel (with other seeds, one image of the four sometimes keeps only a sixth of it). In full mode the weight is
# Lucid's for InceptionV1, 1e2 on a diversity summed over the other images, which is `batch - 1` times this mean: 3e2
# here; the course has not measured it, so there the cell prints its numbers and checks no claim.
#
# With it, you should see four different images, and your objective say that they differ. In lite mode one
# is still much like the images without; in the others the arcs are washed out in blue and white, broken
# into dark dashes, or faded into a fine wavy texture with one ring. Each still excites the channel, less
# than the images without (the cell prints each one's response).

# %%
DIVERSITY = 1e2 * (4 - 1) if FULL else 1.5
channel = objectives.channel(LAYER, CURVES[1])
alike = render(model, channel, batch=4, steps=STEPS, size=SIZE)
varied = render(model, channel + DIVERSITY * objectives.Objective(diversity_objective(BELOW)), batch=4,
                steps=STEPS, size=SIZE)
image_grid(list(alike) + list(varied), ["without"] * 4 + [f"diversity {DIVERSITY:g}"] * 4, cols=4, size=2)
plt.show()

# %%
def gram_similarities(x):
    """Each pair's Gram similarity at BELOW: diversity_objective on the two images alone."""
    return torch.tensor([diversity_objective(BELOW)(lambda layer: get_activations(model, x[[i, j]], layer)).item()
                         for i in range(len(x)) for j in range(i + 1, len(x))])


with torch.no_grad():
    pairs = [gram_similarities(x) for x in (alike, varied)]
    response = [channel_responses(model, x, LAYER)[:, CURVES[1]] for x in (alike, varied)]
for name, p, r in zip(("without", "with diversity"), pairs, response):
    print(f"{name}: Gram similarity at {BELOW} of each pair {p.numpy().round(2)} (mean {p.mean():.3f}); "
          f"channel {CURVES[1]} {r.numpy().round(1)}")
# measured on `vision` with render seeds 0-4: most alike pair with diversity 0.34-0.65 (seed 0, shown: 0.42),
# least alike without 0.976-0.99; the weakest image keeps 0.16-0.53 of the mean response without (seed 0: 0.53)
if not FULL:
    claim("with diversity no two of the four images are as alike as any two without (every pair's Gram "
          "similarity below 0.7 with, above 0.95 without), and each keeps at least a tenth of the channel's mean "
          "response without", lambda: bool(pairs[1].max() < 0.7 and pairs[0].min() > 0.95
                                          and response[1].min() > 0.1 * response[0].mean()),
          seen=[round(v.item(), 3) for v in (pairs[1].max(), pairs[0].min(), response[1].min() / response[0].mean())])
else:
    print("full mode: Lucid's weight, not measured by the course; no claim checked: compare the numbers above")

# %% [markdown]
# ## 6. A layer at a glance
#
# Sixteen channels of the layer in one batched render (the engine optimizes a list of objectives as one
# batch, one image each). Some are curves, some edges or textures, some look like nothing you can name.

# %%
grid = list(range(16))
image_grid(render(model, [f"{LAYER}:{c}" for c in grid], steps=STEPS, size=SIZE), [str(c) for c in grid],
           cols=8, size=1.5, suptitle=f"{LAYER}, channels 0-15"); plt.show()

# %% [markdown]
# ## 7. Investigation: a convincing image
#
# The same loop can optimize a **class**: the model's logit layer is a layer like any other. Can you make an
# image that the model is sure shows a given class, with probability at least 0.9, and that stays that
# convincing when it moves by up to 4 pixels in any direction? (Every shift from 1 to 4 counts, not 4 alone:
# section 2 showed why.)
#
# There is more than one way to fail: an objective that raises the class's logit can raise the others too,
# and an image that works at one position may not work at another. The test asks for classes this notebook
# does not try and checks the model's probabilities itself, on your image and on shifted copies.
#
# <details><summary>Hint: the idea</summary>
#
# Two questions decide it: what exactly to maximize, and what the optimization should see. A class's logit
# can rise while every other logit rises with it, so the probability stays low; an objective that is high
# only when this class beats the rest does not have that problem. And an image that is only ever optimized at
# one position has no reason to work at another: you built a tool for that in section 4.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# Check `class_index` (an int >= 0, else `ValueError`). Write an objective that returns the negative
# log-probability of the class, `-torch.log_softmax(T(logits_layer), dim=-1)[:, class_index].mean()`, and hand
# it to your `visualize` with jitter as large as the test's largest shift (`shift=4`). Try it on a class or two here
# before you run the check, and look at the probabilities of the shifted copies it prints.
# </details>

# %% [exercise] 01.convincing_image

# %%
check("01.convincing_image")

# %%
FISH = 8 if not FULL else 2  # lite: the "fish" class; full: an output of InceptionV1
image = convincing_image(model, FISH, logits_layer=LOGITS, size=SIZE, steps=STEPS)
with torch.no_grad():
    shifted = [image] + [torch.roll(image, s, -1) for s in (1, 2, 3, 4)]
    probs = torch.softmax(get_activations(model, torch.cat(shifted), LOGITS), -1)[:, FISH].cpu()
titles = ["as made"] + [f"{s} px right" for s in (1, 2, 3, 4)]
image_grid(torch.cat(shifted), [f"{t}: p={p:.2f}" for t, p in zip(titles, probs)], cols=5, size=2); plt.show()

# %% [markdown]
# ## What you built
#
# * `get_activations` and objectives as functions of `T`: the vocabulary of every later vision lesson;
# * why naive pixel ascent gives noise that works only on the network's pixel grid, and the two fixes: a
#   spectrum scaled like natural images, and images that must work under jitter;
# * your own `visualize` loop; the course's `render` is the same idea with colour decorrelation, lucent's
#   scale and rotation jitter, batching, and a forward pass that stops at the deepest layer it needs;
# * diversity through Gram-matrix similarity, and class visualization.
#
# Lesson 02 turns the loop around: instead of starting from noise, start from a photo and exaggerate what a
# layer already sees in it.
