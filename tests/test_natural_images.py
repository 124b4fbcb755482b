"""Natural images for full mode: nothing here downloads. The offline path fails within seconds with a clear
message and falls back to the generated images; the verify-and-extract path runs on a small fake Imagenette
archive served from a file:// URL, with its own sha256."""

import hashlib
import io
import tarfile
import time

import numpy as np
import pytest
import torch
from PIL import Image

from mi_course import config
from mi_course.vision import natural_images as ni


def jpeg(colour, size=(200, 160)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), colour, dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def fake_archive(path, members):
    """A .tgz holding ``members``: {name: bytes} (files), or {name: ("link", tarfile type)} for links."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(data, bytes):
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            else:
                info.type, info.linkname = data[1], "/etc/passwd"
                archive.addfile(info)
    return hashlib.sha256(path.read_bytes()).hexdigest()


GOOD = {
    "imagenette2-160/val/n01440764/a.JPEG": jpeg((200, 30, 30)),
    "imagenette2-160/val/n01440764/b.JPEG": jpeg((30, 200, 30), (160, 240)),
    "imagenette2-160/val/n03028079/c.JPEG": jpeg((30, 30, 200)),
    "imagenette2-160/train/n01440764/t.JPEG": jpeg((0, 0, 0)),
    "imagenette2-160/noisy_imagenette.csv": b"path,label\n",
}


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv(ni.DATA_ENV, str(tmp_path / "data"))
    return tmp_path / "data"


def serve(monkeypatch, tmp_path, members):
    archive = tmp_path / "imagenette2-160.tgz"
    digest = fake_archive(archive, members)
    monkeypatch.setattr(ni, "URL", archive.as_uri())
    monkeypatch.setattr(ni, "SHA256", digest)
    return archive


def test_fetch_verifies_the_archive_and_extracts_only_the_validation_images(data_home, tmp_path, monkeypatch):
    serve(monkeypatch, tmp_path, GOOD)
    folder = ni.fetch_imagenette(progress=False)
    assert folder == data_home / "imagenette2-160" / "val" and ni.cached()
    files = sorted(p.relative_to(data_home).as_posix() for p in data_home.rglob("*") if p.is_file())
    assert files == ["imagenette2-160/.complete", "imagenette2-160/val/n01440764/a.JPEG",
                     "imagenette2-160/val/n01440764/b.JPEG", "imagenette2-160/val/n03028079/c.JPEG"], files
    assert not list(data_home.glob(".*.part")), "the downloaded archive is removed after extraction"
    images, names = ni.load_imagenette(size=32, progress=False)
    assert images.shape == (3, 3, 32, 32) and images.dtype == torch.float32
    assert names == ["tench", "tench", "church"]
    assert images[0, 0].mean() > 0.7 and images[2, 2].mean() > 0.7, "colours survive (RGB, in [0, 1])"
    two, _ = ni.load_imagenette(2, size=16, seed=1, progress=False)
    assert two.shape == (2, 3, 16, 16)
    # cached now: the URL is not read again
    monkeypatch.setattr(ni, "URL", "https://unreachable.invalid/imagenette2-160.tgz")
    assert ni.fetch_imagenette(progress=False) == folder


def test_a_wrong_sha256_stops_before_anything_is_extracted(data_home, tmp_path, monkeypatch):
    serve(monkeypatch, tmp_path, GOOD)
    monkeypatch.setattr(ni, "SHA256", "0" * 64)
    with pytest.raises(ValueError, match="sha256"):
        ni.fetch_imagenette(progress=False)
    assert not (data_home / "imagenette2-160").exists() and not ni.cached()
    assert not list(data_home.glob(".*.part")), "a rejected archive is deleted"


@pytest.mark.parametrize("bad", [{"imagenette2-160/val/../../evil.JPEG": b"x"}, {"/tmp/evil.JPEG": b"x"},
                                 {"imagenette2-160/val/link.JPEG": ("link", tarfile.SYMTYPE)},
                                 {"imagenette2-160/val/hard.JPEG": ("link", tarfile.LNKTYPE)}],
                         ids=["dotdot", "absolute", "symlink", "hardlink"])
def test_unsafe_archives_are_refused(data_home, tmp_path, monkeypatch, bad):
    serve(monkeypatch, tmp_path, {**GOOD, **bad})
    with pytest.raises(ValueError, match="unsafe|link"):
        ni.fetch_imagenette(progress=False)
    assert not (data_home / "imagenette2-160" / "val").exists()
    assert not (tmp_path / "evil.JPEG").exists()


def test_offline_fails_fast_with_a_clear_message_and_example_images_fall_back(data_home, monkeypatch):
    monkeypatch.setattr(ni, "URL", "https://imagenette.unreachable.invalid/imagenette2-160.tgz")
    monkeypatch.setattr(config, "network_available", lambda host, port=443, timeout=2.0: False)
    start = time.time()
    with pytest.raises(ni.NaturalImagesUnavailable, match="cannot be reached.*not cached"):
        ni.fetch_imagenette(progress=False)
    assert time.time() - start < 5, "offline must be found out in seconds"
    monkeypatch.delenv(config.DRY_RUN_ENV, raising=False)
    images, source = ni.example_images(8, mode="full", size=48)
    assert images.shape == (8, 3, 48, 48) and "generated" in source and "unavailable" in source
    assert torch.equal(images, ni.lite_images(8, 48)), "the fallback is the lite generated set"


def test_a_failing_download_is_reported_as_unavailable(data_home, tmp_path, monkeypatch):
    monkeypatch.setattr(ni, "URL", (tmp_path / "missing.tgz").as_uri())
    monkeypatch.setattr(ni, "_reachable", lambda url: True)
    with pytest.raises(ni.NaturalImagesUnavailable, match="downloading"):
        ni.fetch_imagenette(progress=False)


def test_example_images_in_lite_mode_and_in_a_dry_run_never_download(data_home, monkeypatch):
    monkeypatch.setattr(ni, "fetch_imagenette", lambda *a, **k: pytest.fail("must not download"))
    images, source = ni.example_images(5, mode="lite")
    assert images.shape == (5, 3, 64, 64) and "generated" in source
    monkeypatch.setenv(config.DRY_RUN_ENV, "1")
    images, source = ni.example_images(5, mode="full")
    assert images.shape == (5, 3, 160, 160) and "dry run" in source


def test_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(ni.DATA_ENV, str(tmp_path / "x"))
    assert ni.data_dir() == tmp_path / "x"
    monkeypatch.delenv(ni.DATA_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert ni.data_dir() == tmp_path / "cache" / "mi-course"
