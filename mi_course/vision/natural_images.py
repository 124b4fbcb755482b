"""Natural images for full mode's dataset examples: Imagenette's validation split, fetched on first use.

Imagenette (Jeremy Howard, fast.ai, https://github.com/fastai/imagenette) is ten easy ImageNet classes; the
160-pixel version's validation split is 3,925 photos. Lesson 03 looks for the photos that excite a
channel most; lucent's InceptionV1 was trained on ImageNet, so these are the kind of images it knows.

* The archive (about 94 MB) is downloaded once from fast.ai's public S3 bucket, its sha256 checked before
  anything is extracted, and only the validation JPEGs are kept, under :func:`data_dir` (``$MI_COURSE_DATA``,
  else ``$XDG_CACHE_HOME/mi-course``, else ``~/.cache/mi-course``).
* Offline with nothing cached, :func:`fetch_imagenette` raises :class:`NaturalImagesUnavailable` within
  seconds (a 2-second reachability probe first, then short socket timeouts), and :func:`example_images`
  falls back to the lite generated image set with a message saying so. A dry run never downloads.

    images, source = example_images(512)        # (512, 3, 160, 160) Imagenette photos in full mode
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import numpy as np
import torch

URL = "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz"
# As recorded by FluxML/FastAI.jl's datadeps checksums for this URL; it could not be verified from the machine
# this was written on (no network there). A mismatch stops before anything is extracted.
SHA256 = "88daccb09b6fce93f45e6c09ddeb269cce705549e6bff322092a2a5a11489863"
ROOT = "imagenette2-160"        # the archive's top folder
SPLIT = "val"                   # only this split is extracted
N_IMAGES = 3925                 # Imagenette 2's validation split
DATA_ENV = "MI_COURSE_DATA"
TIMEOUT = 10.0                  # seconds a socket may stay silent during the download
LITE_SEED = (3, 0)              # the generated fallback: a seed the lite models were not trained on
CLASS_NAMES = {"n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player",
               "n03000684": "chain saw", "n03028079": "church", "n03394916": "French horn",
               "n03417042": "garbage truck", "n03425413": "gas pump", "n03445777": "golf ball",
               "n03888605": "parachute"}


class NaturalImagesUnavailable(RuntimeError):
    """Imagenette is not cached and cannot be downloaded here (offline, or the download failed)."""


def data_dir() -> Path:
    """Where downloaded data sets live: ``$MI_COURSE_DATA``, else ``$XDG_CACHE_HOME/mi-course``, else
    ``~/.cache/mi-course``."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "mi-course"


def imagenette_dir() -> Path:
    """The folder the validation images are extracted to (``<data_dir>/imagenette2-160/val``)."""
    return data_dir() / ROOT / SPLIT


def _done_marker() -> Path:
    return data_dir() / ROOT / ".complete"


def cached() -> bool:
    """Whether the validation images are already extracted (and were verified when they were)."""
    return _done_marker().exists() and imagenette_dir().is_dir()


def _reachable(url: str) -> bool:
    from mi_course.config import network_available

    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(parsed.path).exists()
    return network_available(parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80))


def _download(url: str, target: Path, progress: bool) -> str:
    """Stream ``url`` into ``target``; returns the sha256 of what was written."""
    from tqdm.auto import tqdm

    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response, open(target, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc="Imagenette", disable=not progress,
                  leave=False) as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _safe_members(archive: tarfile.TarFile, prefix: str) -> list[tarfile.TarInfo]:
    """The regular files and folders under ``prefix`` (e.g. ``imagenette2-160/val/``); a ValueError for any
    member that could write outside the target (an absolute path, ``..``, a link or a device)."""
    keep = []
    for member in archive.getmembers():
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts or member.name.startswith(("/", "\\")) or "\\" in member.name:
            raise ValueError(f"unsafe path in the archive: {member.name!r}")
        if not (member.isfile() or member.isdir()):
            raise ValueError(f"the archive holds a link or special file {member.name!r}: refusing to extract")
        if member.name.startswith(prefix) and member.isfile():
            keep.append(member)
    return keep


def extract_split(archive_path: Path, destination: Path) -> int:
    """Extract the validation images of an Imagenette archive into ``destination`` (``.../imagenette2-160``),
    safely: every member is checked before one is written, only ``<root>/val/`` files are written, through a
    temporary folder renamed into place at the end. Returns the number of files written."""
    prefix = f"{ROOT}/{SPLIT}/"
    with tarfile.open(archive_path, "r:*") as archive:
        members = _safe_members(archive, prefix)
        if not members:
            raise ValueError(f"the archive holds no {prefix} files: is it Imagenette?")
        destination.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=destination))
        try:
            for member in members:
                relative = PurePosixPath(member.name).relative_to(prefix)
                out = staging.joinpath(*relative.parts)
                if staging.resolve() not in out.resolve().parents:  # belt and braces
                    raise ValueError(f"unsafe path in the archive: {member.name!r}")
                out.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                with source, open(out, "wb") as f:
                    shutil.copyfileobj(source, f)
            final = destination / SPLIT
            if final.exists():
                shutil.rmtree(final)
            staging.rename(final)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    return len(members)


def fetch_imagenette(progress: bool = True) -> Path:
    """The folder of Imagenette's validation images, downloading and extracting them on first use.

    Raises:
        NaturalImagesUnavailable: the archive's host cannot be reached (found within seconds) or the
            download failed; ValueError: the archive's sha256 is not the recorded one, or it is unsafe.
    """
    if cached():
        return imagenette_dir()
    if not _reachable(URL):
        raise NaturalImagesUnavailable(
            f"{urlparse(URL).hostname or URL} cannot be reached and Imagenette is not cached in {data_dir()}. "
            f"Download {URL} by hand and set {DATA_ENV}, or work with the lite generated images")
    root = data_dir()
    root.mkdir(parents=True, exist_ok=True)
    archive = root / ".imagenette2-160.tgz.part"
    try:
        try:
            digest = _download(URL, archive, progress)
        except OSError as err:  # URLError, timeouts, refused connections
            raise NaturalImagesUnavailable(f"downloading {URL} failed: {err}") from None
        if digest != SHA256:
            raise ValueError(f"{URL} has sha256 {digest}, not the recorded {SHA256}: nothing was extracted")
        extract_split(archive, root / ROOT)
        _done_marker().write_text(f"{URL}\nsha256 {digest}\n")
    finally:
        archive.unlink(missing_ok=True)
    return imagenette_dir()


def image_files(folder: Path | None = None) -> list[Path]:
    """The validation JPEGs, sorted (class folder, then file name)."""
    folder = imagenette_dir() if folder is None else Path(folder)
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpeg", ".jpg", ".png"))


def _load(path: Path, size: int) -> torch.Tensor:
    """One photo: the shorter side resized to ``size``, centre-cropped to a square, RGB in [0, 1]."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        w, h = image.size
        scale = size / min(w, h)
        image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BILINEAR)
        w, h = image.size
        left, top = (w - size) // 2, (h - size) // 2
        array = np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.float32) / 255.0
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def load_imagenette(n: int | None = None, size: int = 160, seed: int = 0, progress: bool = True
                    ) -> tuple[torch.Tensor, list[str]]:
    """``n`` validation photos (all when None), drawn with a seeded permutation, as (n, 3, size, size) in [0, 1],
    and their class names. Fetches the images first if needed (see :func:`fetch_imagenette`)."""
    files = image_files(fetch_imagenette(progress))
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int or None, got {n!r}")
        order = np.random.default_rng(seed).permutation(len(files))[:n]
        files = [files[i] for i in sorted(order)]
    images = torch.stack([_load(f, size) for f in files])
    return images, [CLASS_NAMES.get(f.parent.name, f.parent.name) for f in files]


def lite_images(n: int, size: int = 64, seed=LITE_SEED) -> torch.Tensor:
    """``n`` images of the lite models' generated set (:mod:`mi_course.organisms.images`), with a seed they
    were not trained on."""
    from mi_course.organisms.images import generate

    return generate(n, seed=seed, size=size)[0]


def example_images(n: int, mode: str | None = None, size: int | None = None, seed: int = 0,
                   progress: bool = True) -> tuple[torch.Tensor, str]:
    """Images to look for dataset examples in, and a line saying what they are.

    Full mode: ``n`` Imagenette validation photos at ``size`` (default 160) pixels; offline (or in a dry run)
    the lite generated images at that size instead, and the line says why. Lite mode: ``n`` generated images
    at ``size`` (default 64)."""
    from mi_course.config import dry_run, get_mode

    full = get_mode(mode) == "full"
    size = size if size is not None else (160 if full else 64)
    if full and not dry_run():
        try:
            images, _ = load_imagenette(n, size, seed, progress)
            return images, f"{len(images)} Imagenette validation photos at {size} px"
        except (NaturalImagesUnavailable, ValueError) as err:  # offline, or an archive that failed its checks
            reason = str(err)
        return lite_images(n, size), f"{n} generated images at {size} px (Imagenette unavailable: {reason})"
    if full:
        return lite_images(n, size), f"{n} generated images at {size} px (a dry run does not download Imagenette)"
    return lite_images(n, size), f"{n} generated images at {size} px (mi_course.organisms.images)"
