"""Per-run secret inputs for class grading.

The graded tests draw their inputs from fixed seeds (``torch.Generator().manual_seed(3)``,
``torch.manual_seed(0)``), which keeps a learner's ``check`` reproducible. In class grading that would let a
submission answer from a table of the outputs the tests expect. So the judge, and only the judge (the
process that draws the inputs and computes the references), mixes every torch seed a test sets with a
secret drawn once per grading run: the same test draws other inputs in every run, the same for every
student in one run (fair, and byte-identical files may share a result), and the subject, which receives the
inputs as data, never learns the secret or the seeds.

A test that hands the learner's code a seed and then checks what that code drew from it (a documented
random protocol) gives it ``run_seed(n)`` and reproduces the draws with ``learner_generator(seed)``, which
seeds exactly as the learner's code does (``learner_seeding()`` runs the course's own function that way).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Iterator

import torch

SECRET_ENV = "MI_COURSE_JUDGE_SECRET"  # set by grade-class once per run; drawn per process otherwise
SEED_BITS = 63  # torch accepts any int64 seed; stay positive
RUN_SEED_BITS = 31  # a seed handed to the learner's code: small enough for numpy's and random's seeders too
_secret: int | None = None  # the run's, once install() has been called


def mix(secret: int, seed: int) -> int:
    """The seed actually used for ``seed`` under ``secret`` (a keyed hash: unrelated seeds stay unrelated)."""
    digest = hashlib.blake2b(str(int(seed)).encode(), key=secret.to_bytes(16, "little"), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> (64 - SEED_BITS)


def draw_secret() -> int:
    return secrets.randbits(127)


def secret_from_env() -> int:
    """The run's secret from ``SECRET_ENV`` (a decimal int), or a fresh one."""
    text = os.environ.get(SECRET_ENV, "").strip()
    return int(text) % 2**127 if text.isdigit() else draw_secret()


def install(secret: int) -> None:
    """From now on, in this process, ``torch.manual_seed(s)`` and ``torch.Generator().manual_seed(s)`` seed
    with ``mix(secret, s)``. Called once by the judge's pytest process; never undone (the process is the
    run's)."""
    plain_manual_seed = getattr(torch.random.manual_seed, "_mi_plain", torch.random.manual_seed)
    plain_generator = getattr(torch.Generator, "_mi_plain", torch.Generator)

    class Generator(plain_generator):  # type: ignore[misc, valid-type]
        _mi_plain = plain_generator

        def manual_seed(self, seed: int) -> "Generator":
            return super().manual_seed(mix(secret, seed))

    def manual_seed(seed: int) -> torch.Generator:
        return plain_manual_seed(mix(secret, seed))

    global _secret
    _secret = secret
    manual_seed._mi_plain = plain_manual_seed  # type: ignore[attr-defined]
    Generator.__name__ = Generator.__qualname__ = "Generator"
    torch.Generator = Generator  # type: ignore[misc]
    torch.manual_seed = manual_seed  # type: ignore[assignment]
    torch.random.manual_seed = manual_seed  # type: ignore[assignment]


def run_seed(seed: int) -> int:
    """A seed to hand to the learner's code: ``seed`` itself, or under the judge one drawn from the secret."""
    return seed if _secret is None else mix(_secret, seed) >> (SEED_BITS - RUN_SEED_BITS)


def learner_generator(seed: int) -> torch.Generator:
    """``torch.Generator().manual_seed(seed)`` exactly as the learner's code makes it (never mixed), to check
    what it drew from a seed it was handed."""
    return getattr(torch.Generator, "_mi_plain", torch.Generator)().manual_seed(seed)


@contextlib.contextmanager
def learner_seeding() -> Iterator[None]:
    """Inside this block torch seeds as the learner's code does (unmixed): for running the course's own
    function on a seed the learner's code was handed, to compare what both drew."""
    mixed_generator, mixed_manual_seed = torch.Generator, torch.manual_seed
    torch.Generator = getattr(mixed_generator, "_mi_plain", mixed_generator)  # type: ignore[misc]
    torch.manual_seed = torch.random.manual_seed = getattr(mixed_manual_seed, "_mi_plain", mixed_manual_seed)
    try:
        yield
    finally:
        torch.Generator = mixed_generator  # type: ignore[misc]
        torch.manual_seed = torch.random.manual_seed = mixed_manual_seed  # type: ignore[assignment]
