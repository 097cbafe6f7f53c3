"""Decode the image forms people have (PIL image, numpy array, file path) into RGB PIL images."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def looks_like_image_path(value: Any) -> bool:
    return isinstance(value, (str, Path)) and Path(str(value)).suffix.lower() in IMAGE_SUFFIXES


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """Pixels in 0..255 from the array's real range; anything ambiguous is refused, never clipped.

    uint8 as is; other integer types by their dtype's range when they use it (uint16: / 257),
    else as 0..255 when they fit; floats in [0, 1] x 255, in [-1, 1] rescaled, in [0, 255] as is.
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    seen = f"values {lo:g}..{hi:g} in a {arr.dtype} array"
    if np.issubdtype(arr.dtype, np.integer):
        if lo >= 0 and hi <= 255:
            return arr.astype(np.uint8)
        if arr.dtype == np.uint16:  # 16-bit images: the full 0..65535 range
            return np.round(arr / 257.0).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating) and np.isfinite([lo, hi]).all():
        if lo >= 0 and hi <= 1:
            return np.round(arr * 255.0).astype(np.uint8)
        if lo >= -1 and hi <= 1:
            return np.round((arr + 1.0) * 127.5).astype(np.uint8)
        if lo >= 0 and hi <= 255:
            return np.round(arr).astype(np.uint8)
    raise DataError(f"cannot tell the pixel range of an image array ({seen}): give uint8 (0..255), uint16 "
                    "(0..65535), or floats in [0, 1], [-1, 1] or [0, 255].")


def _from_file(img):
    """RGB, with 16-bit and float modes scaled from their real range (PIL's convert would saturate them)."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(img)
        if img.mode.startswith("I;16") or (arr.dtype.kind in "iu" and arr.max(initial=0) > 255):
            arr = arr.astype(np.uint16) if arr.min(initial=0) >= 0 and arr.max(initial=0) <= 65535 else arr
        from PIL import Image

        return Image.fromarray(to_uint8(arr)).convert("RGB")
    return img.convert("RGB")


def to_pil(value: Any):
    """An RGB PIL image from a PIL image, an HxW / HxWxC array (uint8, or float in [0, 1]) or a path."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(value, Image.Image):
        return _from_file(value)
    if isinstance(value, dict) and ("bytes" in value or "path" in value):  # a datasets Image() cell, undecoded
        if value.get("bytes"):
            import io

            return to_pil(Image.open(io.BytesIO(value["bytes"])))
        value = value["path"]
    if isinstance(value, np.ndarray) or type(value).__name__ == "Tensor":
        arr = np.asarray(value)
        if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
            arr = arr.transpose(1, 2, 0)  # CHW -> HWC
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.ndim not in (2, 3):
            raise DataError(f"an image array must be HxW or HxWxC, got shape {arr.shape}.")
        try:
            return Image.fromarray(to_uint8(arr)).convert("RGB")
        except TypeError:
            raise DataError(f"cannot read an array of shape {arr.shape} and dtype {arr.dtype} as an image: "
                            "use HxW, HxWxC or CxHxW (C = 1, 3 or 4).") from None
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.is_file():
            where = "" if path.is_absolute() else f" (resolved from {Path.cwd()})"
            raise DataError(f"image file not found: {str(path)!r}{where}. Check the path.")
        try:
            with Image.open(path) as img:
                return _from_file(img)
        except Image.DecompressionBombError as exc:
            raise DataError(f"image file {str(path)!r} is too large to decode safely ({exc}). Resize it, or raise "
                            "PIL.Image.MAX_IMAGE_PIXELS if you trust the file.") from None
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(
                f"cannot decode image file {str(path)!r} ({exc}). Remove it from the dataset or re-save it as PNG/JPEG."
            ) from None
    raise DataError(f"cannot use a {type(value).__name__} as an image: pass a PIL image, a numpy array or a file path.")
