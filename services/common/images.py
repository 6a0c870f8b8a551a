"""Image input, the same for every service: size and pixel limits, EXIF, RGB, safe paths."""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import BadRequest, Invalid, NotFound, PayloadTooLarge, UnsupportedMedia

ALLOWED_FORMATS = {"JPEG", "PNG", "WEBP", "MPO"}  # MPO: multi-picture JPEGs from phones

# we check pixel counts ourselves before decoding; PIL's global guard would only warn
Image.MAX_IMAGE_PIXELS = None
warnings.simplefilter("ignore", Image.DecompressionBombWarning)


def resolve_under(root: Path, relative: str) -> Path:
    """``relative`` resolved inside ``root``; anything that escapes it (``..``, absolute, symlink) is a 400."""
    if not relative or "\x00" in relative:
        raise BadRequest("image_path is empty or holds a NUL byte")
    root = Path(root).resolve()
    candidate = Path(relative)
    if candidate.is_absolute():
        raise BadRequest("image_path must be relative to the data root, not absolute")
    try:
        resolved = (root / candidate).resolve()
        if resolved != root and root not in resolved.parents:
            raise BadRequest("image_path points outside the data root")
        if not resolved.is_file():
            raise NotFound(f"image_path {relative[:200]!r} does not exist under the data root")
    except OSError as exc:  # e.g. a name longer than the filesystem allows
        raise BadRequest(f"image_path is not a usable path ({exc.strerror or type(exc).__name__})") from None
    return resolved


def read_image_path(root: Path, relative: str, max_bytes: int) -> bytes:
    path = resolve_under(root, relative)
    if path.stat().st_size > max_bytes:
        raise PayloadTooLarge(f"image is larger than {max_bytes} bytes")
    return path.read_bytes()


def b64_bytes(data: str, max_bytes: int) -> bytes:
    if len(data) > max_bytes * 4 // 3 + 8:
        raise PayloadTooLarge(f"image is larger than {max_bytes} bytes")
    if data.startswith("data:") and "," in data:
        data = data.split(",", 1)[1]
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid("image_b64 is not valid base64") from None


def decode_image(data: bytes, max_pixels: int, max_bytes: int, draft_side: int | None = None) -> Image.Image:
    """Decode to RGB with EXIF orientation applied; refuse bombs before decoding pixels."""
    if not data:
        raise Invalid("the image is empty")
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"image is larger than {max_bytes} bytes")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise UnsupportedMedia("could not read the image: send a JPEG, PNG or WebP file") from None
    except (OSError, ValueError, Image.DecompressionBombError):
        raise UnsupportedMedia("could not read the image header") from None
    if img.format not in ALLOWED_FORMATS:
        raise UnsupportedMedia(f"image format {img.format} is not supported: send a JPEG, PNG or WebP file")
    width, height = img.size
    if width * height > max_pixels:
        raise PayloadTooLarge(f"image has {width}x{height} pixels, more than the limit of {max_pixels}")
    if getattr(img, "n_frames", 1) > 1 and img.format != "MPO":
        img.seek(0)
    try:
        if draft_side and img.format in ("JPEG", "MPO"):
            # DCT-domain downscale: decodes a 4000 px photo at a fraction of the cost
            img.draft("RGB", (draft_side, draft_side))
        img.load()
        img = ImageOps.exif_transpose(img) or img
        return img.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise Invalid("the image is truncated or corrupt and could not be decoded") from None


def encode_png(img: Image.Image, compress_level: int = 1) -> str:
    """PNG as base64; level 1 is several times faster than the default 6 for little size."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=compress_level)
    return base64.b64encode(buf.getvalue()).decode("ascii")
