# %% [markdown]
# # 02 DeepDream
#
# Lesson 01 started from noise and changed the image until one channel fired. **DeepDream** starts from a
# photo instead, and changes it until a whole layer fires harder: whatever the layer sees a little of in the
# photo, it is made to see more of, and the photo fills with it. Mordvintsev, Olah and Tyka made the first
# dreams this way (*Inceptionism: Going Deeper into Neural Networks*, Google Research blog, 2015); the Distill
# article on feature visualization lists it among the objectives you can optimize, as the *layer* objective
# next to neurons, channels and class logits (Olah, Mordvintsev and Schubert, *Feature Visualization*,
# Distill 2017).
#
# The objective is the layer's **activation norm**, the mean of the squares of all its activations. Its
# gradient with respect to the photo says which small change makes the layer more active; DeepDream follows
# it uphill. Three pieces make that work on a real photo, and you write each:
#
# 1. `dream_step`: one step of **normalized** gradient ascent, clamped to valid pixels;
# 2. `octave_pyramid`: the photo at several scales, so that the dream can grow patterns of every size;
# 3. `deep_dream`: the dream over the octaves, with **random shifts** against the network's pixel grid;
# 4. an investigation, `dream_layer_for`: at which layer should you dream to make the model see lines,
#    corners or shapes?
#
# In full mode the model is lucent's InceptionV1 (GoogLeNet, the network of the original dreams), dreamed at
# `mixed3b` (early: edges, curves, textures) and `mixed4c` (later: parts of objects). In lite mode it is the
# course's small CNN `vision`, trained on generated pictures of arcs, lines, edges, shapes, textures and fish;
# its four layers `conv1` ... `conv4` are dreamed at `conv2` and `conv4`. It never saw a photo, which makes
# its dreams a clear view of what it learned to look for.

# %% [setup]

# %%
import matplotlib.pyplot as plt
import torch

from mi_course import check, claim, get_mode, load_model
from mi_course.vision.image_plots import image_grid
from mi_course.vision.photos import class_logits, grid_unevenness, layer_norm, mean_frequency, sample_photo

torch.set_num_threads(1)  # small convolutions: one thread is about as fast
FULL, GPU = get_mode() == "full", torch.cuda.is_available()
model = load_model("vision")
if FULL:  # lucent's InceptionV1, the photo at the 224 px it was trained on; shifts and octaves as in 2015
    EARLY, LATE, SIZE, SHIFT, OCTAVES = "mixed3b", "mixed4c", 224, 32, 4
    LAYERS = ["mixed3a", "mixed3b", "mixed4a", "mixed4c", "mixed4e"]
else:     # the course's CNN, trained at 64 px: a 128 px photo holds a few of its 64 px "worlds"
    EARLY, LATE, SIZE, SHIFT, OCTAVES = "conv2", "conv4", 128, 8, 3
    LAYERS = list(model.layer_names)  # conv1 ... conv4
STEPS = (10 if GPU else 4) if FULL else 10  # dream steps per octave: a CPU runs InceptionV1 slowly
photo = sample_photo("chelsea", size=SIZE)  # Chelsea the cat, one of scikit-image's sample photos
image_grid([photo], ["the photo"], size=3)
plt.show()

# %% [markdown]
# ## 1. One step uphill
#
# A dream step computes the layer's activations for the photo, their mean square, and the gradient `g` of
# that number with respect to the pixels; then it moves the photo a little along `g`. Two details matter:
#
# * **normalize the gradient.** The size of `g` depends on the layer and on the photo, by orders of magnitude
#   (and it shrinks or grows as the dream goes on). Dividing it by its mean absolute value, as the original
#   DeepDream code did, fixes the size of the step: a pixel moves by `lr` on average at every step, at every
#   layer, so one learning rate works everywhere and you can compare layers.
# * **clamp.** A pixel is a number in [0, 1]; the gradient does not know that. Clamp after each step.
#
# <details><summary>Hint: the idea</summary>
#
# Make a leaf tensor from the photo that requires grad (`image[None]`, a batch of one), catch the layer's
# output with a forward hook on a forward pass of the *scaled* batch (`input_transform(model)`), take the
# mean of its squares, and let `torch.autograd.grad` give you the gradient. Normalize, step up, clamp, and
# return a detached `[3, H, W]` image. `layer_output(model, batch, layer)` does the hook and the
# scaling for you, if you like.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# Validate first. Then, with `device = next(model.parameters()).device`,
# `x = image.detach().to(device)[None].requires_grad_(True)`;
# `acts = layer_output(model, x, layer)` (or your own hook, removed in a `finally`);
# `g, = torch.autograd.grad(acts.pow(2).mean(), x)`; `g = g / (g.abs().mean() + 1e-8)`;
# `return (x.detach() + lr * g)[0].clamp(0, 1).to(image.device)`. For a missing layer, turn
# `model.get_submodule`'s `AttributeError` into a `ValueError` that lists `model.named_modules()`.
# </details>

# %% [exercise] 02.dream_step

# %%
check("02.dream_step")

# %% [markdown]
# Twenty plain steps at the late layer: no octaves, no shifts yet. The layer's activation norm should climb
# with every step, and the photo should begin to carry small, repeated patterns: whatever the layer already
# half-saw in the fur and the eyes.

# %%
x, norms, shown = photo, [layer_norm(model, photo[None], LATE).item()], {0: photo}
for i in range(1, 21):
    x = dream_step(model, x, LATE, lr=0.01)
    norms.append(layer_norm(model, x[None], LATE).item())
    if i in (5, 20):
        shown[i] = x
image_grid(list(shown.values()), [f"{i} steps at {LATE}" for i in shown], size=2.6)
plt.show()
plt.figure(figsize=(4, 2.4)); plt.plot(norms, "o-", ms=3)
plt.xlabel("step"); plt.ylabel(f"{LATE} activation norm"); plt.show()

# %%
claim(f"20 steps of lr 0.01 raise {LATE}'s activation norm more than {1.5 if FULL else 3} times",
      norms[-1] > (1.5 if FULL else 3) * norms[0], seen=norms[-1] / norms[0]);

# %% [markdown]
# ## 2. Octaves
#
# A layer's units each look at a patch of the photo, their **receptive field**, so a dream at one scale
# draws patterns of one size, the size of that patch. To grow larger structures, DeepDream dreams the photo
# at several scales, called octaves: first a small copy (where the same patch covers more of the scene), then
# larger ones, carrying what was dreamed upwards. The first piece is the pyramid itself: the photo made
# `scale` times smaller, again and again, returned smallest first (the order in which it is dreamed).
#
# <details><summary>Hint: the idea</summary>
#
# Work out each octave's size from the full size, `round(height / scale**k)` for `k` from `n_octaves - 1`
# down to 0, check the smallest is at least 8 pixels, and resize the photo to each size; the last entry is a
# copy of the photo itself.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `sizes = [(round(h / scale**k), round(w / scale**k)) for k in range(n_octaves - 1, -1, -1)]`; for all but
# the last, `torch.nn.functional.interpolate(image[None], size=size, mode="bilinear", antialias=True)[0]`; append
# `image.clone()`. Validate `image`, `n_octaves` and `scale` first.
# </details>

# %% [exercise] 02.octave_pyramid

# %%
check("02.octave_pyramid")

# %%
pyramid = octave_pyramid(photo, OCTAVES, 1.4)
image_grid(pyramid, [f"octave {len(pyramid) - 1 - i}: {p.shape[1]} x {p.shape[2]}" for i, p in enumerate(pyramid)],
           size=2.4)
plt.show()

# %% [markdown]
# ## 3. DeepDream
#
# The whole dream puts the two together, with one more trick:
#
# * **octaves with detail.** Keep the *detail*, what the dream has added so far (zeros at first). At each
#   octave, upsample the detail to that octave's size, add it to that octave of the photo, dream a few steps,
#   and keep `dreamed - octave` as the new detail. Upsampling only the detail, never the dreamed image, keeps
#   the photo's own sharpness: its fine detail comes from its larger octave.
# * **random shifts.** A network's strides and pooling see the photo on a fixed grid of pixels, and gradient
#   ascent on a fixed grid prints that grid into the result (Odena, Dumoulin and Olah, *Deconvolution and
#   Checkerboard Artifacts*, Distill 2016, show such artefacts in gradients). Rolling the image by a random
#   offset before each step, and back after it, puts the grid somewhere else every time; the original code
#   called it jitter. Rolling (not cropping or padding) keeps the photo's size.
# * **clamping.** Each step clamps; clamp the result too, so that a dream is always a valid image.
#
# <details><summary>Hint: the idea</summary>
#
# `pyramid = octave_pyramid(image, octaves, octave_scale)` and `detail = torch.zeros_like(pyramid[0])`. For
# each octave: resize the detail, add it, then `steps` times draw a shift, roll, `dream_step`, roll back.
# Afterwards, `detail = dreamed - octave`. One generator, made once, gives every shift.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `generator = torch.Generator().manual_seed(seed)`; in the octave loop
# `dreamed = octave + torch.nn.functional.interpolate(detail[None], size=tuple(octave.shape[1:]),
# mode="bilinear")[0]`; in the
# step loop `dy, dx = torch.randint(-shift, shift + 1, (2,), generator=generator).tolist()`,
# `stepped = dream_step(model, dreamed.roll((dy, dx), dims=(1, 2)), layer, lr)`,
# `dreamed = stepped.roll((-dy, -dx), dims=(1, 2))`. Return `dreamed.clamp(0, 1)`. Check `steps` and `shift`
# before you start.
# </details>

# %% [exercise] 02.deep_dream

# %%
check("02.deep_dream")

# %%
dream = deep_dream(model, photo, LATE, steps=STEPS, octaves=OCTAVES, shift=SHIFT)
image_grid([photo, dream], ["the photo", f"dreamed at {LATE}"], size=4)
plt.show()
up = (layer_norm(model, dream[None], LATE) / layer_norm(model, photo[None], LATE)).item()
print(f"{LATE}'s activation norm x{up:.1f}; mean change per pixel {(dream - photo).abs().mean():.3f}")

# %% [markdown]
# In lite mode the cat's eyes get bright, ringed rims and the fur fills with curved blobs; with a larger
# learning rate (below) new ring-shaped eyes open in the fur. `conv4` learned to find curves and the round,
# eyed heads of the fish class, and that is what it is made to see. Its norm rises several times over, yet
# the photo is still there.
#
# **Strength.** The learning rate sets how far the dream goes. At a small one it is a faint overlay on the
# photo, measurably close to it (the correlation of pixels, `r`), while the layer's norm already rises.

# %%
strengths = [0.001, 0.003, 0.01, 0.03]
dreams = [deep_dream(model, photo, LATE, steps=STEPS, lr=lr, octaves=OCTAVES, shift=SHIFT) for lr in strengths]
r = [torch.corrcoef(torch.stack([d.flatten(), photo.flatten()]))[0, 1].item() for d in dreams]
ups = [(layer_norm(model, d[None], LATE) / layer_norm(model, photo[None], LATE)).item() for d in dreams]
image_grid(dreams, [f"lr {lr}: r = {c:.3f}, norm x{u:.1f}" for lr, c, u in zip(strengths, r, ups)], size=2.8)
plt.show()

# %%
claim(f"the dream raises {LATE}'s norm more than {1.2 if FULL else 2} times at lr 0.01",
      ups[2] > (1.2 if FULL else 2), seen=ups[2])
claim("at lr 0.001 the dream stays close to the photo (pixel correlation above 0.99) and still raises the norm",
      r[0] > 0.99 and ups[0] > 1, seen=(round(r[0], 4), round(ups[0], 3)));

# %% [markdown]
# ### An early and a late layer
#
# Each layer dreams what it detects. Dreamed at the early layer, the lite model's photo fills with stripes,
# bold parallel strokes that follow the fur: `conv2` sees strokes and textures. At the late layer the
# patterns are curved and round. Each dream raises the norm of its own layer more than the other layer's
# dream does.

# %%
early = deep_dream(model, photo, EARLY, steps=STEPS, octaves=OCTAVES, shift=SHIFT)
image_grid([photo, early, dream], ["the photo", f"dreamed at {EARLY}", f"dreamed at {LATE}"], size=3.4)
plt.show()
norm = {(d, layer): layer_norm(model, image[None], layer).item()
        for d, image in [(EARLY, early), (LATE, dream)] for layer in (EARLY, LATE)}
for layer in (EARLY, LATE):
    print(f"{layer}'s norm: {norm[(EARLY, layer)]:.3g} dreamed at {EARLY}, {norm[(LATE, layer)]:.3g} at {LATE}")

# %%
claim("each layer's dream raises that layer's norm more than the other layer's dream does",
      norm[(EARLY, EARLY)] > norm[(LATE, EARLY)] and norm[(LATE, LATE)] > norm[(EARLY, LATE)],
      seen={k: round(v, 3) for k, v in norm.items()});

# %% [markdown]
# ### What the octaves and the shifts do
#
# Two controls, each with the same number of steps as the dream: one octave only (every step at full size),
# and one octave without shifts. Without octaves the patterns are all small, the size of the layer's
# receptive field on the full photo; with them they grow: the **mean spatial frequency** of the change
# (`mean_frequency`, cycles per pixel) falls. Without shifts the change falls unevenly on the network's
# pixel grid: the **grid unevenness** (`grid_unevenness`) compares how much each of the 2 x 2 pixel positions
# under the network's first stride changed (the lite model's first max pool; InceptionV1's first
# convolution), and the shifts bring it down. In the crops the grid shows as a pixel-level speckle that the
# shifted dream does not have. Distill's feature visualization article traces such high-frequency patterns
# to strided convolutions and pooling; InceptionV1's strides are larger, and so are its patterns.

# %%
flat = deep_dream(model, photo, LATE, steps=STEPS * OCTAVES, octaves=1, shift=SHIFT)
still = deep_dream(model, photo, LATE, steps=STEPS * OCTAVES, octaves=1, shift=0)
freq = {name: mean_frequency(d - photo) for name, d in [("octaves", dream), ("one octave", flat)]}
grid = {name: grid_unevenness(d - photo) for name, d in [("shifts", flat), ("no shifts", still)]}
crop = slice(SIZE // 4, SIZE // 4 + SIZE // 3)
image_grid([dream, flat, still[:, crop, crop], flat[:, crop, crop]],
           [f"{OCTAVES} octaves: {freq['octaves']:.3f} c/px", f"one octave: {freq['one octave']:.3f} c/px",
            f"no shifts (crop): {grid['no shifts']:.4f}", f"shifts (crop): {grid['shifts']:.4f}"], size=3)
plt.show()

# %%
if not FULL:
    claim("the octaves make the change coarser: its mean frequency is under 0.8 of the one-octave dream's",
          freq["octaves"] < 0.8 * freq["one octave"], seen=freq["octaves"] / freq["one octave"])
    claim("the shifts make the change fall more evenly on the pixel grid (unevenness under 0.9 of the unshifted)",
          grid["shifts"] < 0.9 * grid["no shifts"], seen=grid["shifts"] / grid["no shifts"])

# %% [markdown]
# ## 4. An investigation: where does the model see a line?
#
# The lite model classifies edges, lines, arcs, corners, circles, shapes, textures, colour blobs and fish.
# Dreaming at a layer changes the photo, and so the model's class logits. **At which layer should you dream
# to make the model see more lines? More corners? More (filled, polygonal) shapes?** Make a guess first,
# from what you know of the layers: each one combines the one below, and looks at a larger patch.
#
# `dream_layer_for(model, photos, target, layers)` answers it for one class: the layer whose dream raises
# the class's logit most on average over the photos. The grader asks it about photos you have not seen and
# checks your layer against the model: its dream must raise the class most. In full mode InceptionV1 has
# 1008 classes, and the question becomes: which layer's dream makes it more sure of what it already sees in
# the photo (its top class)?
#
# <details><summary>Hint: the idea</summary>
#
# Measure it. For each layer, dream every photo with your `deep_dream` (its defaults), and compare the
# target's logit in the dream and in the photo; `class_logits(model, images)` gives the logits of any course
# model. Average over the photos, then take the layer with the largest rise.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# Validate (photos and layers not empty; `target` an int in `0 .. n_classes - 1`, with
# `n_classes = class_logits(model, photos[0][None]).shape[1]`). Then for each layer:
# `rise = class_logits(model, deep_dream(model, p, layer)[None])[0, target] - class_logits(model, p[None])[0, target]`
# for each photo `p`; average the rises of each layer over the photos, and return the layer with the largest.
# </details>

# %% [exercise] 02.dream_layer_for

# %%
check("02.dream_layer_for")

# %%
photos = [sample_photo(name, size=SIZE if FULL else 96) for name in ("chelsea", "astronaut", "coffee")]
if FULL:  # InceptionV1's classes have no names here: the class it already sees in the cat photo
    photos = photos if GPU else photos[:2]
    TARGETS = {"the cat's top class": int(class_logits(model, photo[None]).argmax())}
else:
    TARGETS = {name: model.classes.index(name) for name in ("line", "corner", "shape")}
answers = {name: dream_layer_for(model, photos, target, LAYERS) for name, target in TARGETS.items()}
print("dream here to see more of each class:", answers)

# %% [markdown]
# The whole picture: the rise of every class's logit when the photos are dreamed at each layer, with the
# course's `deep_dream` (`mi_course.vision.deepdream`, the same algorithm as yours, with a progress bar). Each
# cell holds its rise; a black frame marks the layer whose dream raises that class most (where any layer raises
# it). Some classes fall much further than any class rises, so the colour scale is centred on 0 and stops at
# the 75th percentile of the sizes: the deepest colours mean at least that much, and the rises stay visible
# next to the large falls.

# %%
from mi_course.vision.deepdream import logit_gains

gains = logit_gains(model, photos, LAYERS).mean(1)  # [layer, class], averaged over the photos
columns = list(range(gains.shape[1])) if not FULL else gains.max(0).values.topk(10).indices.tolist()
names = list(model.classes) if not FULL else [f"class {c}" for c in columns]
shown = gains[:, columns]
limit = max(shown.abs().quantile(0.75).item(), 1e-6)  # centred on 0, clipped: the large falls do not wash out the rises
fig, ax = plt.subplots(figsize=(0.75 * len(columns) + 2, 0.55 * len(LAYERS) + 1.6))
im = ax.imshow(shown, cmap="RdBu", vmin=-limit, vmax=limit)
for i in range(shown.shape[0]):
    for j in range(shown.shape[1]):
        v = shown[i, j].item()
        ax.text(j, i, f"{v:+.1f}", ha="center", va="center", fontsize=7, color="w" if abs(v) > 0.6 * limit else "k")
for j, i in enumerate(shown.argmax(0).tolist()):  # the layer that raises each class most, if any does
    if shown[i, j] > 0:
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="k", lw=2))
ax.set_xticks(range(len(columns)), names, rotation=45, ha="right"); ax.set_yticks(range(len(LAYERS)), LAYERS)
fig.colorbar(im, ax=ax, extend="both", label=f"logit rise (clipped at ±{limit:.1f})")
ax.set_title("which class each layer's dream raises (frame: the largest rise of each class)"); plt.show()

# %% [markdown]
# In the lite model the answer follows the hierarchy of its layers: lines rise most when you dream at
# `conv2`, corners (two strokes that meet) at `conv3`, filled shapes at `conv4`. The more parts a class is
# made of, the later the layer whose dream draws it. Some classes rise at no layer, or barely (in lite mode edge,
# circle and colour): the photos are full of edges and colour already, and every dream covers them with
# patterns (the early layers least).
# An objective on a whole layer mixes everything the layer detects; lesson 01's channel objectives pull one
# thing out.

# %%
if not FULL:
    claim("dreaming at conv2 raises 'line' most, at conv3 'corner' most, at conv4 'shape' most",
          answers == {"line": "conv2", "corner": "conv3", "shape": "conv4"},
          seen={k: answers.get(k) for k in ("line", "corner", "shape")})

# %% [markdown]
# ## 5. Your own photo
#
# `sample_photo` also reads any image file: put a photo next to this notebook and give its name
# (`sample_photo("my_photo.jpg", size=SIZE)`). scikit-image's other sample photos are in
# `mi_course.vision.photos.PHOTOS`. Try other layers, more octaves, a larger `lr`.

# %%
from mi_course.vision import deepdream
from mi_course.vision.photos import PHOTOS

mine = sample_photo("astronaut", size=SIZE)  # or sample_photo("my_photo.jpg", size=SIZE)
mine_dreamed = deepdream.deep_dream(model, mine, LAYERS[-2], steps=STEPS, octaves=OCTAVES, shift=SHIFT)
image_grid([mine, mine_dreamed], ["your photo", f"dreamed at {LAYERS[-2]}"], size=3.4)
plt.show()
print("sample photos:", ", ".join(PHOTOS))

# %% [markdown]
# ## Summary
#
# * DeepDream is gradient ascent on a photo, on the squared activations of a layer (Mordvintsev, Olah and
#   Tyka, 2015): the layer's objective in Distill's list, started from a photo instead of noise.
# * Normalizing the gradient by its mean absolute value makes `lr` the mean change per pixel, at any layer;
#   clamping keeps the pixels valid.
# * Octaves let patterns grow beyond one receptive field; carrying only the detail up keeps the photo sharp.
#   Random shifts, undone after each step, keep the network's pixel grid out of the dream.
# * What a layer dreams shows what it detects: in the lite model, strokes and lines at `conv2`, corners at
#   `conv3`, rings, eyed heads and filled shapes at `conv4`.
#
# A dream mixes every feature of a layer at once. Lesson 03 takes single neurons apart: the curve detectors,
# with feature visualization, dataset examples and synthetic stimuli.
