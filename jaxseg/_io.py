"""File input and output for the command line: PNG label maps and atomic writes.

Label maps are single-channel PNG images whose pixel values are class ids:
Pillow modes ``L`` (8-bit grey), ``P`` (palette; the palette *index* is the
class id, as in PASCAL VOC) and ``I;16`` / ``I`` (16- and 32-bit integers).
Colour images (``RGB``, ``RGBA``, ``LA``), float images (``F``) and bilevel
images (``1``) are rejected: a colour PNG is the usual sign that a
visualisation was passed where a label map was expected.

Every problem raises :class:`InputError` naming the file, so the command line
can print one line and exit instead of showing a traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

#: Pillow modes accepted as label maps.
LABEL_MODES = ("L", "P", "I;16", "I;16B", "I;16L", "I")
_SUFFIXES = (".png",)


class InputError(Exception):
    """A problem with one input file (or folder), reported in one line."""

    def __init__(self, path: str | os.PathLike | None, message: str):
        self.path = None if path is None else str(path)
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


@dataclasses.dataclass(frozen=True)
class Pair:
    """A prediction file and the label file of the same name."""

    name: str
    pred: Path
    label: Path


def _import_pil() -> Any:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - depends on the environment
        raise InputError(
            None, "reading PNG files needs Pillow; install the extra: pip install 'jaxseg[cli]'"
        ) from None
    return Image


def list_pngs(folder: str | os.PathLike) -> dict[str, Path]:
    """PNG files of ``folder`` (not recursive, hidden files skipped), by file name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "not a folder")
    return {
        p.name: p
        for p in sorted(folder.iterdir())
        if p.suffix.lower() in _SUFFIXES and not p.name.startswith(".") and p.is_file()
    }


def match_files(
    pred_dir: str | os.PathLike, label_dir: str | os.PathLike
) -> tuple[list[Pair], list[InputError]]:
    """Pair prediction and label PNGs by file name.

    Returns:
      ``(pairs, problems)``: the matched pairs sorted by name, and one
      :class:`InputError` per file present in only one of the folders.
    """
    preds, labels = list_pngs(pred_dir), list_pngs(label_dir)
    problems = [
        InputError(preds[n], f"prediction has no label file of the same name in {label_dir}")
        for n in sorted(preds.keys() - labels.keys())
    ]
    problems += [
        InputError(labels[n], f"label has no prediction file of the same name in {pred_dir}")
        for n in sorted(labels.keys() - preds.keys())
    ]
    pairs = [Pair(n, preds[n], labels[n]) for n in sorted(preds.keys() & labels.keys())]
    return pairs, problems


def probe_label_map(path: str | os.PathLike) -> tuple[int, int]:
    """Check the header of a label-map PNG without decoding it; return ``(height, width)``."""
    image_mod = _import_pil()
    try:
        with image_mod.open(path) as img:
            mode, (width, height), fmt = img.mode, img.size, img.format
    except OSError as e:  # includes PIL.UnidentifiedImageError
        raise InputError(path, f"cannot read image ({_reason(e)})") from None
    if fmt != "PNG":
        raise InputError(path, f"not a PNG file (format {fmt})")
    _check_mode(path, mode)
    return height, width


def read_label_map(path: str | os.PathLike) -> np.ndarray:
    """Decode a single-channel PNG label map into an ``int32 [H, W]`` array.

    Raises:
      InputError: unreadable, truncated, not a PNG, or not a single-channel
        integer image.
    """
    image_mod = _import_pil()
    try:
        with image_mod.open(path) as img:
            if img.format != "PNG":
                raise InputError(path, f"not a PNG file (format {img.format})")
            _check_mode(path, img.mode)
            img.load()  # decodes now: truncated data fails here, not later
            arr = np.asarray(img)
    except OSError as e:
        raise InputError(path, f"cannot read image ({_reason(e)})") from None
    except (ValueError, SyntaxError) as e:  # Pillow raises these on corrupt chunks
        raise InputError(path, f"cannot read image ({_reason(e)})") from None
    if arr.ndim != 2:
        raise InputError(path, f"expected a single-channel label map; got shape {arr.shape}")
    return arr.astype(np.int32)


def _check_mode(path: Any, mode: str) -> None:
    if mode in LABEL_MODES:
        return
    if mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr", "RGBX", "La", "RGBa", "PA"):
        what = f"a colour image (mode {mode})"
    elif mode == "F":
        what = "a floating-point image (mode F)"
    else:
        what = f"an image of mode {mode}"
    raise InputError(
        path,
        f"expected a single-channel integer label map (mode L, P, I;16 or I); got {what}",
    )


def _reason(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text[:200]


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Write a file atomically: into a temporary file of the same folder, then rename.

    Readers see either the old file or the complete new one, never a partial
    write; on error the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        os.chmod(tmp, _file_mode(path))  # mkstemp creates 0600; keep usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _file_mode(path: Path) -> int:
    """The mode of the file being replaced, else the default for new files (umask)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """:func:`atomic_write` of a bytes payload."""
    atomic_write(path, lambda f: f.write(data))


def check_writable(path: str | os.PathLike, option: str) -> None:
    """Fail early (before any work) when the folder of an output file is missing."""
    parent = Path(path).parent
    if not parent.is_dir():
        raise InputError(path, f"{option}: folder {parent} does not exist")
    if Path(path).is_dir():
        raise InputError(path, f"{option}: is a folder, expected a file name")
