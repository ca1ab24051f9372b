"""Image input shared by the image models: the `dir` dataset and base64 request params."""

import base64
import binascii
import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

import contract


def to_array(image: Image.Image, size: int) -> np.ndarray:
    """Grayscale, resized to size x size, flattened, scaled to [0, 1]."""
    return np.asarray(image.convert("L").resize((size, size)), dtype=np.float32).reshape(-1) / 255.0


def load_examples(root: Path, settings: dict) -> list[tuple[np.ndarray, str]]:
    return [(to_array(Image.open(path), settings["IMG_SIZE"]), label)
            for path, label in contract.read_dir_dataset(root, (".png", ".jpg", ".jpeg"))]


def decode_image(params: dict) -> Image.Image:
    value = params.get("image")
    if not isinstance(value, str) or not value:
        raise ValueError("param 'image' (String, required) must be a base64-encoded PNG or JPEG")
    try:
        return Image.open(io.BytesIO(base64.b64decode(value, validate=True)))
    except (binascii.Error, UnidentifiedImageError, OSError):
        raise ValueError("param 'image' is not a base64-encoded PNG or JPEG") from None
