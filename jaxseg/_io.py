"""File input and output for the command line: finding pairs, reading label maps, safe writes.

Label maps are integer arrays whose values are class ids:

- PNG images of Pillow modes ``L`` (8-bit grey), ``P`` (palette; the palette
  *index* is the class id, as in PASCAL VOC), ``I;16`` / ``I`` (16- and 32-bit
  integers) and ``1`` (bilevel, read as 0 / 1, as ``Image.fromarray`` writes a
  boolean array). Colour images (``RGB``, ``RGBA``, ``LA``) and float images
  (``F``) are refused: a colour PNG is the usual sign that a visualisation was
  passed where a label map was expected.
- NumPy ``.npy`` arrays of any rank with an integer or boolean dtype.
- NIfTI volumes (``.nii``, ``.nii.gz``), read with nibabel (the ``nifti``
  extra); the voxel spacing comes from the header.

Every problem raises :class:`InputError` naming the file, so the command line
can print one line and exit instead of showing a traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import stat
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: Pillow modes accepted as label maps.
LABEL_MODES = ("L", "P", "I;16", "I;16B", "I;16L", "I", "1")
#: File suffixes read as label maps (compared case-insensitively).
SUFFIXES = (".png", ".npy", ".nii", ".nii.gz")
#: Default largest image (pixels) decoded; Pillow's own guard stops at 179 Mpx.
DEFAULT_MAX_PIXELS = 1 << 30


class InputError(Exception):
    """A problem with one input file (or folder, or option), reported in one line."""

    def __init__(self, path: str | os.PathLike | None, message: str):
        self.path = None if path is None else str(path)
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


@dataclasses.dataclass(frozen=True)
class Pair:
    """A prediction file and the label file it is compared with."""

    name: str
    pred: Path
    label: Path


@dataclasses.dataclass(frozen=True)
class LabelArray:
    """A decoded label map and the voxel spacing its file states (``None`` if none)."""

    values: np.ndarray
    spacing: tuple[float, ...] | None = None


# -- finding files and pairing them -----------------------------------------------


def _suffix(name: str) -> str | None:
    low = name.lower()
    for s in sorted(SUFFIXES, key=len, reverse=True):
        if low.endswith(s):
            return s
    return None


def compile_pattern(pattern: str | None, option: str) -> re.Pattern[str] | None:
    """``{name}_leftImg8bit.png`` → a case-insensitive regex capturing ``name``."""
    if pattern is None:
        return None
    if pattern.count("{name}") != 1:
        raise InputError(None, f"{option}: must contain {{name}} exactly once; got {pattern!r}")
    if "/" in pattern or os.sep in pattern:
        raise InputError(None, f"{option}: matches file names, not paths; got {pattern!r}")
    head, tail = pattern.split("{name}")
    if _suffix(tail) is None:
        raise InputError(
            None, f"{option}: must end in one of {', '.join(SUFFIXES)}; got {pattern!r}"
        )
    return re.compile(f"{re.escape(head)}(?P<name>.+?){re.escape(tail)}", re.IGNORECASE)


def list_files(
    folder: str | os.PathLike, pattern: re.Pattern[str] | None, *, recursive: bool
) -> dict[str, Path]:
    """Label-map files under ``folder`` keyed by ``relative/folder/name``.

    ``name`` is the part of the file name captured by ``{name}`` in ``pattern``,
    or the file name without its suffix. Hidden files and folders are skipped.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(root, "not a folder")
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        rel = os.path.relpath(dirpath, root)
        for fname in sorted(filenames):
            if fname.startswith("."):
                continue
            if pattern is not None:
                m = pattern.fullmatch(fname)
                if m is None:
                    continue
                name = m.group("name")
            else:
                suffix = _suffix(fname)
                if suffix is None:
                    continue
                name = fname[: -len(suffix)]
            key = name if rel == "." else f"{Path(rel).as_posix()}/{name}"
            if key in found:
                raise InputError(
                    Path(dirpath) / fname, f"two files with the same name: also {found[key]}"
                )
            found[key] = Path(dirpath) / fname
    return found


def match_files(
    pred_dir: str | os.PathLike,
    label_dir: str | os.PathLike,
    *,
    pred_pattern: str | None = None,
    label_pattern: str | None = None,
    recursive: bool = True,
) -> tuple[list[Pair], list[InputError]]:
    """Pair prediction and label files.

    A prediction and a label pair up when they have the same relative folder and
    name; a file left over then pairs with the one file of the same name on the
    other side, wherever it lies (Cityscapes keeps labels in one folder per city
    and predictions often in one flat folder).

    Returns:
      ``(pairs, problems)``: the pairs sorted by name, and one
      :class:`InputError` per file that has no partner.
    """
    preds = list_files(
        pred_dir, compile_pattern(pred_pattern, "--pred-pattern"), recursive=recursive
    )
    labels = list_files(
        label_dir, compile_pattern(label_pattern, "--label-pattern"), recursive=recursive
    )
    pairs = {k: Pair(k, preds[k], labels[k]) for k in preds.keys() & labels.keys()}
    left_p = {k: v for k, v in preds.items() if k not in pairs}
    left_l = {k: v for k, v in labels.items() if k not in pairs}
    by_name_p = _by_base(left_p)
    by_name_l = _by_base(left_l)
    for base in sorted(by_name_p.keys() & by_name_l.keys()):
        kp, kl = by_name_p[base], by_name_l[base]
        pairs[kl] = Pair(kl, left_p.pop(kp), left_l.pop(kl))
    problems = [
        InputError(p, f"prediction has no label file of the same name in {label_dir}")
        for _, p in sorted(left_p.items())
    ]
    problems += [
        InputError(p, f"label has no prediction file of the same name in {pred_dir}")
        for _, p in sorted(left_l.items())
    ]
    return [pairs[k] for k in sorted(pairs)], problems


def _by_base(files: dict[str, Path]) -> dict[str, str]:
    """Keys by their last component, for the names that occur once."""
    out: dict[str, list[str]] = {}
    for key in files:
        out.setdefault(key.rsplit("/", 1)[-1], []).append(key)
    return {b: ks[0] for b, ks in out.items() if len(ks) == 1}


# -- reading ----------------------------------------------------------------------


def _import_pil() -> Any:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - depends on the environment
        raise InputError(
            None, "reading PNG files needs Pillow; install the extra: pip install 'jaxseg[cli]'"
        ) from None
    return Image


def read_label_map(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> LabelArray:
    """Read one label map (PNG, ``.npy`` or NIfTI) into an integer NumPy array.

    PNG maps keep their narrow dtype (``uint8`` for modes ``L``, ``P`` and
    ``1``), which the counting fast path relies on.

    Raises:
      InputError: unreadable, truncated, too large, of an unknown format, or not
        a single-channel integer map.
    """
    suffix = _suffix(str(path))
    if suffix == ".npy":
        return LabelArray(_read_npy(path))
    if suffix in (".nii", ".nii.gz"):
        return _read_nifti(path)
    return LabelArray(_read_png(path, max_pixels))


def _read_png(path: Any, max_pixels: int) -> np.ndarray:
    image_mod = _import_pil()
    try:
        with image_mod.open(path) as img:
            if img.format != "PNG":
                raise InputError(path, f"not a PNG file (format {img.format})")
            _check_mode(path, img.mode)
            width, height = img.size
            if width * height > max_pixels:
                raise InputError(
                    path,
                    f"image of {width}x{height} = {width * height:,} pixels is over the "
                    f"limit of {max_pixels:,} (raise it with --max-pixels)",
                )
            img.load()  # decodes now: truncated data fails here, not later
            arr = np.asarray(img)
    except image_mod.DecompressionBombError as e:
        raise InputError(path, f"{_reason(e)} (raise the limit with --max-pixels)") from None
    except (OSError, ValueError, SyntaxError) as e:  # Pillow raises these on bad data
        raise InputError(path, f"cannot read image ({_reason(e)})") from None
    if arr.ndim != 2:
        raise InputError(path, f"expected a single-channel label map; got shape {arr.shape}")
    if arr.dtype == np.bool_:
        arr = _bool_ids(arr)
    return arr


def _bool_ids(arr: np.ndarray) -> np.ndarray:
    """A boolean map as ``uint8`` class ids 0 / 1.

    Pillow hands out mode-``1`` images as boolean arrays whose bytes are 0 and
    255, so the bytes are compared with 0, never reinterpreted.
    """
    return (arr.view(np.uint8) != 0).view(np.uint8)


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
        f"expected a single-channel integer label map (mode L, P, 1, I;16 or I); got {what}",
    )


def _read_npy(path: Any) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise InputError(path, f"cannot read .npy file ({_reason(e)})") from None
    return _integer_array(path, arr)


def _integer_array(path: Any, arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.bool_:
        return _bool_ids(arr)
    if np.issubdtype(arr.dtype, np.integer):
        if arr.dtype.kind == "u" and arr.itemsize == 8 and arr.size and arr.max() >= 2**63:
            raise InputError(path, "label values do not fit in 64-bit signed integers")
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        # Label volumes are often stored as floats; accept them when every value is integral.
        if np.isfinite(arr).all() and (np.round(arr) == arr).all():
            if arr.size and (arr.min() < -(2**31) or arr.max() >= 2**31):
                raise InputError(path, "label values do not fit in 32-bit integers")
            return arr.astype(np.int32)
        raise InputError(
            path,
            f"expected integer class ids; got non-integral {arr.dtype} values (probability "
            "maps are scored with --metrics ece,auroc,ap)",
        )
    raise InputError(path, f"expected an integer label map; got dtype {arr.dtype}")


def _read_nifti(path: Any) -> LabelArray:
    try:
        import nibabel
    except ImportError:
        raise InputError(
            path, "reading NIfTI needs nibabel; install the extra: pip install 'jaxseg[nifti]'"
        ) from None
    try:
        img = nibabel.load(path)
        arr = np.asarray(img.dataobj)
        zooms = img.header.get_zooms()[: arr.ndim]
    except Exception as e:  # nibabel raises many types on bad files
        raise InputError(path, f"cannot read NIfTI file ({_reason(e)})") from None
    return LabelArray(_integer_array(path, arr), tuple(float(z) for z in zooms))


def probability_pattern(pattern: str) -> str:
    """Check ``--prob-pattern`` (``{name}`` and ``{class}`` once each); return the
    pattern of the class-0 files, which pair with the labels as ``--pred-pattern``."""
    if pattern.count("{class}") != 1:
        raise InputError(
            None, f"--prob-pattern: must contain {{class}} exactly once; got {pattern!r}"
        )
    first = pattern.replace("{class}", "0")
    compile_pattern(first, "--prob-pattern")
    return first


def class_files(pattern: str, pair: Pair, num_classes: int) -> list[Path]:
    """The ``num_classes`` files of one prediction under ``--prob-pattern``, class 0 first."""
    m = compile_pattern(pattern.replace("{class}", "0"), "--prob-pattern")
    found = m.fullmatch(pair.pred.name) if m is not None else None
    name = found.group("name") if found else pair.name.rsplit("/", 1)[-1]
    paths = [pair.pred]
    for k in range(1, num_classes):
        path = pair.pred.parent / pattern.replace("{name}", name).replace("{class}", str(k))
        if not path.is_file():
            raise InputError(path, f"missing: the probabilities of class {k} of {pair.pred}")
        paths.append(path)
    return paths


def read_probability_map(
    paths: Sequence[str | os.PathLike],
    num_classes: int,
    *,
    foreground_shape: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Read a probability map ``float32 [..., C]`` from one file or one file per class.

    One path: a ``.npy`` or NIfTI float array with the ``C`` classes on its
    last axis (channels-last). ``C`` paths: one float array per class, all of
    one shape, stacked on a new last axis. Every value must be a number in
    ``[0, 1]``. With ``foreground_shape`` (binary tasks, ``C = 2``), an array of
    that shape, or of that shape with one channel, is the foreground
    probability ``p`` and gives ``[1 - p, p]``.

    Raises:
      InputError: unreadable, not floating point, the wrong number of
        channels, shapes that differ, or a value NaN or outside ``[0, 1]``
        (naming the file, the count and the first such value).
    """
    planes = [_read_float(p) for p in paths]
    if len(planes) == 1:
        arr = planes[0]
        if foreground_shape is not None and arr.shape in (
            foreground_shape,
            (*foreground_shape, 1),
        ):
            p = arr.reshape(foreground_shape)
            return np.stack([1 - p, p], axis=-1)
        if arr.ndim < 2 or arr.shape[-1] != num_classes:
            raise InputError(
                paths[0],
                f"expected a probability map [..., C] with C = {num_classes} channels on the "
                f"last axis (--num-classes); got shape {'x'.join(map(str, arr.shape))}",
            )
    else:
        for p, plane in zip(paths[1:], planes[1:], strict=True):
            if plane.shape != planes[0].shape:
                raise InputError(
                    p,
                    f"shape {'x'.join(map(str, plane.shape))} differs from "
                    f"{'x'.join(map(str, planes[0].shape))} of {paths[0]}",
                )
        arr = np.stack(planes, axis=-1)
    return arr


def _read_float(path: str | os.PathLike) -> np.ndarray:
    """One float array in ``[0, 1]`` (``.npy`` or NIfTI), as ``float32``."""
    suffix = _suffix(str(path))
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise InputError(path, f"cannot read .npy file ({_reason(e)})") from None
    elif suffix in (".nii", ".nii.gz"):
        try:
            import nibabel
        except ImportError:
            raise InputError(
                path, "reading NIfTI needs nibabel; install the extra: pip install 'jaxseg[nifti]'"
            ) from None
        try:
            arr = np.asarray(nibabel.load(path).dataobj)
        except Exception as e:  # nibabel raises many types on bad files
            raise InputError(path, f"cannot read NIfTI file ({_reason(e)})") from None
    else:
        raise InputError(path, "probability maps are read from .npy or NIfTI float arrays")
    if not np.issubdtype(arr.dtype, np.floating):
        raise InputError(
            path,
            f"expected a float probability map; got dtype {arr.dtype} (label maps are "
            "scored with --metrics iou,dice,...)",
        )
    arr = arr.astype(np.float32, copy=False)
    ok = (arr >= 0) & (arr <= 1)  # NaN fails both
    if not ok.all():
        bad = arr[~ok]
        raise InputError(
            path,
            f"{bad.size:,} of {arr.size:,} values are not probabilities in [0, 1] "
            f"(first: {float(bad[0])}); "
            "apply the softmax or sigmoid before saving",
        )
    return arr


def resolve_spacing(
    pair: Pair, pred: LabelArray, label: LabelArray, spacing: tuple[float, ...] | None
) -> LabelArray:
    """``label`` with the voxel spacing the pair is scored at.

    ``spacing`` (``--spacing``: one number for every axis, or one per axis)
    wins over the headers. Otherwise the label's header spacing is used, or the
    prediction's when the label has none; when both files state one they must
    agree (relative tolerance 1e-6): a prediction on another grid than its
    label cannot be compared voxel by voxel.

    Raises:
      InputError: ``spacing`` has the wrong count for the map's axes, or the
        two headers disagree (naming both files and both spacings).
    """
    ndim = label.values.ndim
    if spacing is not None:
        if len(spacing) == 1:
            spacing = tuple(spacing) * ndim
        if len(spacing) != ndim:
            raise InputError(
                pair.label,
                f"--spacing has {len(spacing)} values; this map has {ndim} axes "
                "(give one number for all axes, or one per axis)",
            )
        return LabelArray(label.values, tuple(float(s) for s in spacing))
    if pred.spacing is not None and label.spacing is not None:
        if not np.allclose(pred.spacing, label.spacing, rtol=1e-6, atol=0):
            raise InputError(
                pair.pred,
                f"voxel spacing {_format_spacing(pred.spacing)} differs from "
                f"{_format_spacing(label.spacing)} of the label {pair.label} "
                "(resample the prediction to the label's grid, or give --spacing to "
                "use one spacing for both)",
            )
    return LabelArray(label.values, label.spacing or pred.spacing)


def _format_spacing(spacing: tuple[float, ...]) -> str:
    return "x".join(f"{s:g}" for s in spacing)


def _reason(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text[:200]


# -- writing ----------------------------------------------------------------------


def _is_special(path: str) -> bool:
    """``-``, or an existing path that is not a regular file (a device, a FIFO, a socket)."""
    if path == "-":
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def check_output(path: str, option: str) -> None:
    """Fail early, before any work, when ``path`` cannot be written.

    Special files must be writable; for a regular file (or a symlink to one, or
    a new file) the folder that will hold it must accept a new file, which is
    tried for real (a temporary file is created and removed).
    """
    if _is_special(path):
        if path != "-" and not os.access(path, os.W_OK):
            raise InputError(path, f"{option}: not writable")
        return
    target = Path(os.path.realpath(path))
    if target.is_dir():
        raise InputError(path, f"{option}: is a folder, expected a file name")
    if not target.parent.is_dir():
        raise InputError(path, f"{option}: folder {target.parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise InputError(
            path, f"{option}: cannot write in {target.parent} ({_reason(e)})"
        ) from None
    os.close(fd)
    os.unlink(tmp)
    if target.exists() and not os.access(target, os.W_OK):
        raise InputError(path, f"{option}: file is read-only")


def _stdout_id() -> tuple[int, int] | None:
    try:
        st = os.fstat(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return None
    return st.st_dev, st.st_ino


def _file_ids(path: str | os.PathLike) -> set[Any]:
    """What identifies a file: its resolved path and, if it exists, ``(st_dev, st_ino)``.

    Two paths name the same file when these sets meet: the same path spelled
    differently, a symlink and its target, or two hard links.
    """
    if str(path) == "-":
        sid = _stdout_id()
        return {"-"} if sid is None else {"-", sid}
    ids: set[Any] = {os.path.realpath(path)}
    try:
        st = os.stat(path)
    except OSError:
        return ids
    if st.st_ino:  # some file systems report no inode numbers
        ids.add((st.st_dev, st.st_ino))
    return ids


def check_outputs(outputs: Sequence[tuple[str, str]]) -> None:
    """Fail before any work when an output cannot be written or two outputs name one file.

    ``outputs`` are ``(option, path)``. Special files other than standard
    output (``/dev/null``, a FIFO) may be named by several options.
    """
    seen: list[tuple[str, str, set[Any]]] = []
    stdout = _file_ids("-")
    for option, path in outputs:
        check_output(path, option)
        ids = _file_ids(path)
        if _is_special(path) and (os.path.realpath(path) == os.devnull or not ids & stdout):
            continue
        for other_option, other_path, other_ids in seen:
            if ids & other_ids:
                raise InputError(
                    path,
                    f"{option}: names the same file as {other_option} {other_path}; "
                    "give each output its own file",
                )
        seen.append((option, path, ids))


def check_outputs_not_inputs(
    outputs: Sequence[tuple[str, str]], inputs: Iterable[tuple[str, str | os.PathLike]]
) -> None:
    """Fail before any work when an output names an input file (a label map, a prediction,
    an option's file), directly, through a symlink, or as a hard link.

    ``inputs`` are ``(what, path)``, e.g. ``("the label map", path)``: the files
    the run reads, after pairing.
    """
    existing = []
    for option, path in outputs:
        if path == "-":
            continue
        ids = _file_ids(path)
        if any(isinstance(i, tuple) for i in ids):  # a new file cannot be an input
            existing.append((option, path, ids))
    if not existing:
        return
    for what, src in inputs:
        src_ids = _file_ids(src)
        for option, path, ids in existing:
            if ids & src_ids:
                raise InputError(
                    path,
                    f"{option}: this file is {what} {src}, an input; refusing to "
                    "overwrite it (choose another output file)",
                )


def write_output(path: str, data: bytes) -> None:
    """Write a complete output file safely.

    - ``-`` writes to standard output; an existing special file (``/dev/stdout``,
      a character device, a FIFO) is opened and written directly, never
      replaced.
    - Otherwise the data goes to a temporary file next to the *resolved* path
      (a symlink's target, not the link), which is then renamed over it:
      readers see the old file or the complete new one, never a partial
      write, and the symlink stays a symlink.
    """
    if path == "-":
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    if _is_special(path):
        with open(path, "wb") as f:
            f.write(data)
        return
    target = Path(os.path.realpath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.chmod(tmp, _file_mode(target))  # mkstemp creates 0600; keep usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
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
