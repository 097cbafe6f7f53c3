"""Decode the image forms people have (PIL image, numpy array, file path) into RGB PIL images."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def looks_like_image_path(value: Any) -> bool:
    return isinstance(value, (str, Path)) and Path(str(value)).suffix.lower() in IMAGE_SUFFIXES


def to_pil(value: Any):
    """An RGB PIL image from a PIL image, an HxW / HxWxC array (uint8, or float in [0, 1]) or a path."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(value, Image.Image):
        return value.convert("RGB")
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
        if arr.dtype != np.uint8:
            arr = np.clip(arr * 255.0 if arr.max() <= 1.0 else arr, 0, 255).astype(np.uint8)
        try:
            return Image.fromarray(arr).convert("RGB")
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
                return img.convert("RGB")
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(
                f"cannot decode image file {str(path)!r} ({exc}). Remove it from the dataset or re-save it as PNG/JPEG."
            ) from None
    raise DataError(f"cannot use a {type(value).__name__} as an image: pass a PIL image, a numpy array or a file path.")
