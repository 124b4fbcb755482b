"""The procedural image data set of the lite vision organisms: seeded, generated on the fly, no files.

Ten classes (``CLASSES``), each image RGB in [0, 1], shape (3, size, size), default size 64:

====  =========  ================================================================================
 0    arc        one arc: radius 6-26 px, span 60-150 degrees (70%) or 160-220 (30%), stroke 1.5-4 px
 1    line       one or two straight segments, 14-44 px long, stroke 1.5-4 px
 2    edge       a straight boundary between two flat colours (anti-aliased half-planes)
 3    corner     two straight strokes meeting at 40-140 degrees (a bend with no curvature)
 4    circle     a full ring, radius 5-20 px, stroke 1.5-4 px
 5    shape      a filled regular polygon (3-6 sides), radius 8-20 px, any rotation
 6    texture    stripes, a checkerboard or a dot lattice, period 4-11 px
 7    colour     smooth colour blobs on a flat background (no edges)
 8    fish       a fish facing LEFT or RIGHT: a round head with an eye on the facing side; the body tapers
                 in straight lines to a forked tail on the other side (about 32-50 px long): the two-sided
                 class ("union over cases")
 9    double     fish-like negatives with no facing: tails on both ends, or round heads (eyes) on both ends
====  =========  ================================================================================

``fish_cases`` chooses how the two cases of the fish class differ. ``"mirror"`` (the default): a right-facing
fish is the mirror image of a left-facing one. ``"species"``: the two facings are two species, so that
no single feature covers both cases: left-facing fish have a round head and a forked tail as above,
right-facing fish a pointed (triangular) head and a round fan tail; "double" negatives are drawn from
either species. A small network makes itself mirror-symmetric early on mirror cases, and then shows no
union over cases; the shipped ``vision`` model learned one from species cases (its card says how).

Backgrounds and stroke colours are random (light-on-dark and dark-on-light, grey and coloured) with a
luminance contrast >= 0.35, plus faint pixel noise. Besides the class label, every image has two auxiliary
labels: ``arc_bin`` (arcs: the bulge orientation, as in :mod:`mi_course.vision.stimuli`, rounded to the
nearest of 8 bins of 45 degrees; -1 otherwise) and ``facing`` (fish: 0 = left, 1 = right; -1 otherwise).

    images, labels, extra = generate(256, seed=0)             # (256, 3, 64, 64), (256,), dict of (256,)
    left = class_images("fish", 32, seed=1, facing="left")   # (32, 3, 64, 64)

Everything is a function of the seed (numpy's PCG64 via ``np.random.default_rng``): the same call gives the
same images on every machine.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mi_course.checks import int_at_least
from mi_course.vision.stimuli import arc_distance, pixel_grid, segment_distance, stroke_alpha

CLASSES = ("arc", "line", "edge", "corner", "circle", "shape", "texture", "colour", "fish", "double")
FISH = CLASSES.index("fish")
DOUBLE = CLASSES.index("double")
ARC = CLASSES.index("arc")
FACINGS = ("left", "right")
FISH_CASES = ("mirror", "species")
N_ARC_BINS = 8


# ------------------------------------------------------------------ colours and compositing

def _luminance(c):
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _colour_pair(rng):
    """(background, foreground) RGB colours with luminance contrast >= 0.35."""
    while True:
        if rng.random() < 0.5:     # grey-ish
            bg, fg = np.full(3, rng.random()), np.full(3, rng.random())
            bg, fg = bg + rng.normal(0, 0.04, 3), fg + rng.normal(0, 0.04, 3)
        else:
            bg, fg = rng.random(3), rng.random(3)
        bg, fg = np.clip(bg, 0, 1), np.clip(fg, 0, 1)
        if abs(_luminance(bg) - _luminance(fg)) >= 0.35:
            return bg, fg


def _composite(bg, layers, size):
    img = np.empty((3, size, size))
    img[:] = np.asarray(bg)[:, None, None]
    for alpha, colour in layers:
        img = img * (1 - alpha) + np.asarray(colour)[:, None, None] * alpha
    return img


def _fill_alpha(signed_distance):
    """Coverage of a filled region given a signed distance (negative inside), 1-pixel ramp."""
    return np.clip(0.5 - signed_distance, 0.0, 1.0)


def _polygon_sd(x, y, pts):
    """Signed distance (approximate outside corners) to a convex polygon given counter-clockwise."""
    sd = np.full(x.shape, -np.inf)
    n = len(pts)
    for k in range(n):
        (x0, y0), (x1, y1) = pts[k], pts[(k + 1) % n]
        ex, ey = x1 - x0, y1 - y0
        norm = math.hypot(ex, ey)
        # outward normal of a counter-clockwise polygon is (ey, -ex)
        sd = np.maximum(sd, ((x - x0) * ey - (y - y0) * ex) / norm)
    return sd


def _counter_clockwise(tri):
    (x0, y0), (x1, y1), (x2, y2) = tri
    return tri if (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0) > 0 else tri[::-1]


def _ellipse_sd(x, y, cx, cy, a, b, rot):
    c, s = math.cos(rot), math.sin(rot)
    u, v = (x - cx) * c + (y - cy) * s, -(x - cx) * s + (y - cy) * c
    r = np.hypot(u / a, v / b)
    return (r - 1) * min(a, b)


# ------------------------------------------------------------------ one renderer per class

def _arc(rng, x, y, size):
    radius = rng.uniform(6, 26)
    span = rng.uniform(60, 150) if rng.random() < 0.7 else rng.uniform(160, 220)
    orientation = rng.uniform(0, 360)
    width = rng.uniform(1.5, 4)
    th = math.radians(orientation)
    mx, my = rng.uniform(-12, 12, 2)                     # the arc's midpoint
    d = arc_distance(x, y, mx - radius * math.cos(th), my - radius * math.sin(th), radius,
                     orientation - span / 2, span)
    bg, fg = _colour_pair(rng)
    arc_bin = int(round(orientation / 45.0)) % N_ARC_BINS
    return _composite(bg, [(stroke_alpha(d, width), fg)], size), arc_bin, -1


def _line(rng, x, y, size):
    bg, fg = _colour_pair(rng)
    layers = []
    for _ in range(1 if rng.random() < 0.6 else 2):
        length, th, width = rng.uniform(14, 44), rng.uniform(0, math.pi), rng.uniform(1.5, 4)
        mx, my = rng.uniform(-14, 14, 2)
        ux, uy = math.cos(th) * length / 2, math.sin(th) * length / 2
        layers.append((stroke_alpha(segment_distance(x, y, mx - ux, my - uy, mx + ux, my + uy), width), fg))
    return _composite(bg, layers, size), -1, -1


def _edge(rng, x, y, size):
    bg, fg = _colour_pair(rng)
    th = rng.uniform(0, 2 * math.pi)
    sd = (x * math.cos(th) + y * math.sin(th)) - rng.uniform(-16, 16)
    return _composite(bg, [(_fill_alpha(sd), fg)], size), -1, -1


def _corner(rng, x, y, size):
    bg, fg = _colour_pair(rng)
    vx, vy = rng.uniform(-10, 10, 2)
    a0 = rng.uniform(0, 2 * math.pi)
    a1 = a0 + math.radians(rng.uniform(40, 140)) * rng.choice([-1, 1])
    width = rng.uniform(1.5, 4)
    d = np.full(x.shape, np.inf)
    for a in (a0, a1):
        length = rng.uniform(12, 24)
        d = np.minimum(d, segment_distance(x, y, vx, vy, vx + length * math.cos(a), vy + length * math.sin(a)))
    return _composite(bg, [(stroke_alpha(d, width), fg)], size), -1, -1


def _circle(rng, x, y, size):
    bg, fg = _colour_pair(rng)
    r, width = rng.uniform(5, 20), rng.uniform(1.5, 4)
    cx, cy = rng.uniform(-8, 8, 2)
    return _composite(bg, [(stroke_alpha(np.abs(np.hypot(x - cx, y - cy) - r), width), fg)], size), -1, -1


def _shape(rng, x, y, size):
    bg, fg = _colour_pair(rng)
    n, r, rot = int(rng.integers(3, 7)), rng.uniform(8, 20), rng.uniform(0, 2 * math.pi)
    cx, cy = rng.uniform(-10, 10, 2)
    pts = [(cx + r * math.cos(rot + 2 * math.pi * k / n), cy + r * math.sin(rot + 2 * math.pi * k / n))
           for k in range(n)]
    return _composite(bg, [(_fill_alpha(_polygon_sd(x, y, pts)), fg)], size), -1, -1


def _texture(rng, x, y, size):
    bg, fg = _colour_pair(rng)
    period, th = rng.uniform(4, 11), rng.uniform(0, math.pi)
    u, v = x * math.cos(th) + y * math.sin(th), -x * math.sin(th) + y * math.cos(th)
    kind = rng.integers(3)
    if kind == 0:      # stripes
        alpha = 0.5 + 0.5 * np.cos(2 * math.pi * u / period)
    elif kind == 1:    # checkerboard
        alpha = 0.5 + 0.5 * np.sign(np.cos(2 * math.pi * u / period) * np.cos(2 * math.pi * v / period))
    else:              # dots
        du = np.mod(u, period) - period / 2
        dv = np.mod(v, period) - period / 2
        alpha = _fill_alpha(np.hypot(du, dv) - period * rng.uniform(0.15, 0.3))
    return _composite(bg, [(alpha, fg)], size), -1, -1


def _colour(rng, x, y, size):
    img = np.empty((3, size, size))
    img[:] = rng.random(3)[:, None, None]
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = rng.uniform(-24, 24, 2)
        s = rng.uniform(8, 20)
        w = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s)) * rng.uniform(0.6, 1.0)
        img = img * (1 - w) + rng.random(3)[:, None, None] * w
    return img, -1, -1


def _fish_parts(rng, x, y, heads, tails, species=0):
    """Alpha layers of a fish-like object along a horizontal axis (tilted by up to 12 degrees). Each end
    (-1 = left, +1 = right) is either a *head* (a round half-ellipse with an eye near it: the convex curve
    bulges outwards) or a *tail* (the body tapers in straight lines to a narrow stalk carrying a forked
    tail), or, if neither, a plain round end. ``species`` 1 draws heads pointed (a triangle nose) and tails
    as a round fan instead. Returns (body + tail alpha, eye alpha)."""
    a = rng.uniform(10, 14)                              # half-length of the body
    b = a * rng.uniform(0.5, 0.65)                       # half-height
    t = a * rng.uniform(0.6, 0.85)                       # tail length
    rot = math.radians(rng.uniform(-12, 12))
    cx = rng.uniform(-4, 4) - sum(tails) * t / 2         # centre the whole object
    cy = rng.uniform(-6, 6)
    c, s = math.cos(rot), math.sin(rot)
    u, v = (x - cx) * c + (y - cy) * s, -(x - cx) * s + (y - cy) * c      # object frame
    body = np.zeros_like(u)
    for side in (-1, 1):
        if side in tails:          # taper: quadrilateral from the full height at u = 0 to a stalk at the end
            stalk = b * 0.22
            quad = [(0.0, -b), (side * a, -stalk), (side * a, stalk), (0.0, b)]
            quad = quad if side > 0 else [(0.0, -b), (0.0, b), (side * a, stalk), (side * a, -stalk)]
            body = np.maximum(body, _fill_alpha(_polygon_sd(u, v, quad)))
            base, tip, spread = side * (a - 1.0), side * (a + t), t * rng.uniform(0.7, 0.95)
            if species:            # a round fan on the stalk
                fan = _ellipse_sd(u, v, side * (a + t * 0.45), 0.0, t * 0.5, spread * 0.85, 0.0)
                body = np.maximum(body, _fill_alpha(fan))
                continue
            notch = tip - side * t * 0.3
            for tri in ([(base, 0.0), (tip, -spread), (notch, 0.0)], [(base, 0.0), (notch, 0.0), (tip, spread)]):
                body = np.maximum(body, _fill_alpha(_polygon_sd(u, v, _counter_clockwise(tri))))
        elif species and side in heads:  # pointed head: the body's front half is a triangle to a nose
            nose = [(0.0, -b), (side * a * 1.25, 0.0), (0.0, b)]
            body = np.maximum(body, _fill_alpha(_polygon_sd(u, v, _counter_clockwise(nose))))
        else:                      # round end: the half of the ellipse on this side
            half = np.maximum(_ellipse_sd(u, v, 0, 0, a, b, 0), -side * u)
            body = np.maximum(body, _fill_alpha(half))
    eye = np.zeros_like(body)
    er = rng.uniform(1.6, 2.4)
    for side in heads:
        at = 0.45 if species else 0.55   # inside the narrower pointed head
        eye = np.maximum(eye, _fill_alpha(np.hypot(u - side * a * at, v - b * 0.2) - er))
    return body, eye


def _fish(rng, x, y, size, facing=None, fish_cases="mirror"):
    side = (1 if rng.random() < 0.5 else -1) if facing is None else (1 if facing == "right" else -1)
    species = int(fish_cases == "species" and side > 0)
    body, eye = _fish_parts(rng, x, y, heads=[side], tails=[-side], species=species)
    bg, fg = _colour_pair(rng)
    return _composite(bg, [(body, fg), (eye, bg)], size), -1, int(side > 0)


def _double(rng, x, y, size, fish_cases="mirror"):
    species = int(fish_cases == "species" and rng.random() < 0.5)
    if rng.random() < 0.5:
        body, eye = _fish_parts(rng, x, y, heads=[-1, 1], tails=[], species=species)
    else:
        body, eye = _fish_parts(rng, x, y, heads=[] if rng.random() < 0.3 else [0], tails=[-1, 1], species=species)
    bg, fg = _colour_pair(rng)
    return _composite(bg, [(body, fg), (eye, bg)], size), -1, -1


RENDERERS = (_arc, _line, _edge, _corner, _circle, _shape, _texture, _colour, _fish, _double)


def render(label: int, rng: np.random.Generator, size: int = 64, facing: str | None = None,
           fish_cases: str = "mirror"):
    """One image of class ``label``: (image (3, size, size) float32 tensor, arc_bin, facing) with facing
    0 = left, 1 = right, -1 = not a fish. ``facing`` ("left"/"right") forces the side of a fish;
    ``fish_cases`` is one of :data:`FISH_CASES` (see the module docstring)."""
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label < len(CLASSES):
        raise ValueError(f"label must be an int in [0, {len(CLASSES)}) (one of {CLASSES}), got {label!r}")
    if facing is not None and (facing not in FACINGS or label != FISH):
        raise ValueError(f"facing must be None, or one of {FACINGS} for the fish class, got {facing!r}")
    if fish_cases not in FISH_CASES:
        raise ValueError(f"fish_cases must be one of {FISH_CASES}, got {fish_cases!r}")
    size = int_at_least("size", size, 16)
    x, y = pixel_grid(size)
    if size != 64:                     # sizes are in pixels of a 64 x 64 image: objects scale with the image
        x, y = x * 64 / size, y * 64 / size
    if label == FISH:
        img, arc_bin, face = _fish(rng, x, y, size, facing, fish_cases)
    elif label == DOUBLE:
        img, arc_bin, face = _double(rng, x, y, size, fish_cases)
    else:
        img, arc_bin, face = RENDERERS[label](rng, x, y, size)
    img = img + rng.normal(0, 0.015, img.shape)
    return torch.from_numpy(np.clip(img, 0, 1).astype(np.float32)), arc_bin, face


def generate(n: int, seed: int, size: int = 64, labels=None, fish_cases: str = "mirror"):
    """``n`` images with balanced random classes (or the given ``labels``), all a function of ``seed``.

    Returns (images (n, 3, size, size) float32 in [0, 1], labels (n,) int64, extra) with extra =
    {"arc_bin": (n,) int64 (-1 where not an arc), "facing": (n,) int64 (0 left, 1 right, -1 not a fish)}.
    ``seed`` may be an int or a sequence of ints (e.g. ``(seed, step)`` for a training stream).
    """
    n = int_at_least("n", n, 1)
    rng = np.random.default_rng(seed)
    if labels is None:
        labels = rng.integers(0, len(CLASSES), n)
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    out = [render(int(lab), rng, size, fish_cases=fish_cases) for lab in labels]
    images = torch.stack([o[0] for o in out])
    extra = {"arc_bin": torch.tensor([o[1] for o in out]), "facing": torch.tensor([o[2] for o in out])}
    return images, torch.as_tensor(labels, dtype=torch.long), extra


def class_images(name: str, n: int, seed: int, size: int = 64, facing: str | None = None,
                 fish_cases: str = "mirror") -> torch.Tensor:
    """``n`` images of the class ``name`` (one of ``CLASSES``), (n, 3, size, size); for "fish", ``facing``
    ("left" or "right") fixes the side."""
    if name not in CLASSES:
        raise ValueError(f"name must be one of {CLASSES}, got {name!r}")
    n = int_at_least("n", n, 1)
    rng = np.random.default_rng(seed)
    return torch.stack([render(CLASSES.index(name), rng, size, facing, fish_cases)[0] for _ in range(n)])
