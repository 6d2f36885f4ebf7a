"""Reading and decoding images with limits and clear errors.

Dimensions are read from the header before decoding (and from every frame of a GIF), so a
decompression bomb is refused without allocating it. A JPEG must end with its end-of-image
marker: that catches a file cut short, not one cut and given a new marker (it then decodes with
grey at the bottom, as any viewer shows it). 16-bit PNGs are brought to 8 bits.
"""
import os
import struct
from typing import List, Optional, Tuple

import numpy as np

from edge.errors import ImageError

DEFAULT_MAX_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40000000


def _cv2():
    try:
        import cv2
    except ImportError:
        raise ImageError("OpenCV (cv2) is not installed: pip install 'faceedge[opencv]' "
                         "(on a Jetson use JetPack's python3-opencv)")
    return cv2


def _jpeg_size(data):
    # type: (bytes) -> Optional[Tuple[int, int]]
    i = 2
    n = len(data)
    while i + 9 < n:
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        i += 2 + length
    return None


def image_size(data):
    # type: (bytes) -> Optional[Tuple[int, int]]
    """(width, height) from the header of a JPEG, PNG, GIF or BMP; None if unknown."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width), abs(height)
    return None


def _gif_frames(data):
    # type: (bytes) -> List[Tuple[int, int]]
    """(right, bottom) edge of every frame of a GIF, from its image descriptors: a frame can be
    far larger than the logical screen in the header."""
    frames = []
    n = len(data)
    i = 13
    if n > 10 and data[10] & 0x80:
        i += 3 * (2 << (data[10] & 7))              # global colour table
    while i < n:
        block = data[i]
        if block == 0x3B:                            # trailer
            break
        if block == 0x21:                            # extension: label, then sub-blocks
            i += 2
        elif block == 0x2C and i + 10 <= n:          # image descriptor
            left, top, width, height = struct.unpack("<HHHH", data[i + 1:i + 9])
            frames.append((left + width, top + height))
            packed = data[i + 9]
            i += 10 + (3 * (2 << (packed & 7)) if packed & 0x80 else 0) + 1    # + LZW code size
        else:
            break
        while i < n and data[i]:                     # sub-blocks up to the terminator
            i += data[i] + 1
        i += 1
    return frames


def _to_bgr(image, name):
    # type: (np.ndarray, str) -> np.ndarray
    cv2 = _cv2()
    if image.dtype == np.uint16:                     # 16-bit PNG: the high byte, no float copy
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageError("{} has {} samples; only 8- and 16-bit images are supported".format(name, image.dtype))
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ImageError("{} has {} colour channels; expected grey, BGR or BGRA".format(
        name, image.shape[2] if image.ndim == 3 else image.ndim))


def decode_image(data, max_bytes=DEFAULT_MAX_BYTES, max_pixels=DEFAULT_MAX_PIXELS, name="image"):
    # type: (bytes, int, int, str) -> np.ndarray
    """Decode JPEG/PNG/GIF/BMP bytes to an HxWx3 BGR uint8 array."""
    if not data:
        raise ImageError("{} is empty".format(name))
    if len(data) > max_bytes:
        raise ImageError("{} is {} bytes, over the limit of {}".format(name, len(data), max_bytes))
    size = image_size(data)
    if size is None:
        raise ImageError("{} is not a JPEG, PNG, GIF or BMP image".format(name))
    width, height = size
    if width <= 0 or height <= 0 or width * height > max_pixels:
        raise ImageError("{} is {}x{} pixels, outside the limit of {} pixels".format(name, width, height, max_pixels))
    if data[:3] == b"GIF":
        for right, bottom in _gif_frames(data):
            if right * bottom > max_pixels:
                raise ImageError("{} has a GIF frame reaching {}x{} pixels (the header says {}x{}), outside the "
                                 "limit of {} pixels".format(name, right, bottom, width, height, max_pixels))
    if data[:2] == b"\xff\xd8" and data.rstrip(b"\x00")[-2:] != b"\xff\xd9":
        raise ImageError("{} is a truncated JPEG (no end-of-image marker)".format(name))
    cv2 = _cv2()
    if data[:3] == b"GIF":
        image = _decode_gif(data, name)
    else:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageError("{} could not be decoded (corrupt or unsupported image)".format(name))
    return _to_bgr(image, name)


def _decode_gif(data, name):
    # type: (bytes, str) -> Optional[np.ndarray]
    # OpenCV builds before 4.7 cannot read GIF; Pillow can, when present.
    cv2 = _cv2()
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is not None:
        return image
    return _decode_gif_pillow(data, name)


def _decode_gif_pillow(data, name):
    # type: (bytes, str) -> np.ndarray
    cv2 = _cv2()
    try:
        import io
        from PIL import Image
    except ImportError:
        raise ImageError("{} is a GIF and this OpenCV cannot decode GIF; install Pillow".format(name))
    try:
        with Image.open(io.BytesIO(data)) as pil:
            return cv2.cvtColor(np.asarray(pil.convert("RGB")), cv2.COLOR_RGB2BGR)
    except Image.DecompressionBombError as exc:
        raise ImageError("{} is too large to decode safely: {}".format(name, exc))
    except (IOError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError("{} could not be decoded (corrupt GIF: {})".format(name, exc))


def read_image(path, max_bytes=DEFAULT_MAX_BYTES, max_pixels=DEFAULT_MAX_PIXELS):
    # type: (str, int, int) -> np.ndarray
    if not os.path.exists(path):
        raise ImageError("{}: no such file".format(path))
    if os.path.isdir(path):
        raise ImageError("{}: is a directory, not an image".format(path))
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except (IOError, OSError) as exc:
        raise ImageError("{}: cannot read ({})".format(path, exc.strerror or exc))
    return decode_image(data, max_bytes, max_pixels, name=path)
