# %% [markdown]
# # 00 Start here
#
# Welcome to **mi-course**, a hands-on course in mechanistic interpretability: the study of *how* a
# trained network computes what it computes, one feature, one weight, one circuit at a time.
#
# This notebook checks your environment, shows how exercises work, and maps the course. It takes about
# ten minutes.

# %% [setup]

# %% [markdown]
# ## 1. Your environment
#
# The course runs in two **modes** through the same code:
#
# | mode | models | where |
# |---|---|---|
# | `full` | InceptionV1, GPT-2 small, TransformerLens toy models, SAELens SAEs (downloaded on first use) | Colab or any machine with a GPU |
# | `lite` | small *model organisms* this course trains and ships, in which the same mechanisms exist | any laptop, offline, CPU only |
#
# `auto` (the default) picks `full` when a GPU is present and `lite` otherwise. To choose yourself, set
# the environment variable `MI_COURSE_MODE` before starting Jupyter, or call `mi_course.set_mode("lite")`.
# The setup cell above printed the mode and device in use. `mi-course doctor` in a terminal prints more:
# the versions and which models can be loaded here. The next cell shows the same table.

# %%
from mi_course.models import available_models

for row in available_models():
    print(f"{row['role']:<17} lite: {row['lite']:<12} full: {row['full']}")

# %% [markdown]
# Every model is loaded by its **role**, never by a file name, so a cell like
# `model = mi_course.load_model("attn-only-2l")` works in both modes. Each model also has a **card**,
# `mi_course.model_card(role)`, that says what it is and, for the lite organisms, where its mechanisms
# were measured to be.
#
# ## 2. How an exercise works
#
# Exercises are cells that start with `%%exercise` and an id such as `00.cosine_similarity_matrix`.
#
# 1. Read the explanation above the cell; the function's docstring is the contract.
# 2. Replace `raise NotImplementedError(...)` with your code and run the cell. It saves your answer to
#    `exercises/l00_start_here.py` and makes the function available in the notebook.
# 3. Run the `check(...)` cell below it. You get `PASS`, or the first failing test with a message that
#    points at the likely mistake. `check` never raises, so "Run all" keeps going.
#
# Your answer lives in one place: the exercise cell writes it into the file that is graded. A fresh copy of
# a notebook (after `git pull`, or each time Colab opens it) shows the stubs again; running such an untouched
# stub cell never replaces your saved answer: it loads your answer from the file and says so.
#
# ### Warm-up: cosine similarity
#
# Much of interpretability is geometry: is this feature direction close to that one? The cosine
# similarity of two vectors is $\cos\theta = \frac{\langle u, v\rangle}{\lVert u\rVert\,\lVert v\rVert}$.
# Write `cosine_similarity_matrix(vectors)`, which returns every pairwise cosine for the rows of an
# `[n, d]` tensor.
#
# <details><summary>Hint: the idea</summary>
#
# Cosine similarity is the dot product of two vectors once both have length 1. Scale every row to unit
# length first; then the table of all pairwise cosines is just the table of all pairwise dot products of
# those rows. A zero row has no direction, so decide what it gives before you divide by its length.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# Divide each row by its norm (`vectors.norm(dim=-1, keepdim=True)`), then one matrix product gives all
# the dot products of unit vectors. Clamp the norm away from zero so that a zero row gives 0, not NaN.
# </details>

# %% [exercise] 00.cosine_similarity_matrix

# %%
from mi_course import check

check("00.cosine_similarity_matrix")

# %% [markdown]
# Use it: random directions in high dimensions are almost orthogonal. That fact is what later lets a
# network store more features than it has dimensions (lesson 08, superposition).

# %%
import matplotlib.pyplot as plt
import torch

fig, ax = plt.subplots(figsize=(6, 3))
for d in (2, 16, 256):
    sims = cosine_similarity_matrix(torch.randn(200, d))
    off_diagonal = sims[~torch.eye(200, dtype=torch.bool)]
    ax.hist(off_diagonal.numpy(), bins=60, histtype="step", density=True, label=f"d = {d}")
ax.set_xlabel("cosine similarity of two random directions")
ax.set_ylabel("density")
ax.legend()
plt.show()

# %% [markdown]
# ## 3. How grading works
#
# Each exercise has graded tests in `tests/graded/`, each worth points. From a terminal in the course
# folder:
#
# ```
# mi-course grade                 # every lesson: a table of points and status per exercise
# mi-course grade --lesson 08     # one lesson
# mi-course grade --json report.json --junit report.xml
# ```
#
# Statuses: `passed`, `failed` (a test's assertion failed; its message says why), `not started`
# (the stub is untouched), `error` (your code raised), `timed out` (it ran too long). An exception, an
# infinite loop or a NaN in one exercise is reported for that exercise only; the others are graded as
# usual. Plain `pytest` grades the same files and prints the same table at the end.
#
# ## 4. The course map
#
# | lesson | topic | models |
# |---|---|---|
# | 01 | feature visualization | vision |
# | 02 | DeepDream | vision |
# | 03 | curve detectors | vision |
# | 04 | circuits, motifs and universality | vision, vision-b, vision-c |
# | 05 | transformer circuits | attn-only-1l, attn-only-2l |
# | 06 | induction heads | attn-only-2l, lm |
# | 07 | the logit lens | lm |
# | 08 | superposition | toy models you train |
# | 09 | sparse autoencoders | lm, sae |
# | 10 | feature dashboards and steering | lm, sae |
# | 11 | circuits in the wild | modular-addition, lm |
#
# Part I (vision) follows Olah et al., *Zoom In* and the *Circuits* thread (Distill, 2020). Part II
# follows Elhage et al., *A Mathematical Framework for Transformer Circuits* (2021) and Olsson et al.,
# *In-context Learning and Induction Heads* (2022). Part III follows Elhage et al., *Toy Models of
# Superposition* (2022) and Bricken et al., *Towards Monosemanticity* (2023).
