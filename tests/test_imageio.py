"""Image decoding's bad inputs (issue 13): a GIF frame larger than its header, 16-bit PNGs, a GIF
Pillow refuses as a bomb; real images made from a real photo."""
import struct

import numpy as np
import pytest

from edge.errors import ImageError
from edge.imageio import decode_image
from tests.media import known


def gif(screen, frame, colours=2):
    """A GIF89a whose logical screen is `screen` and whose one frame is `frame` (w, h), with a local
    colour table and a few bytes of LZW data (the frame is never fully described)."""
    table = 3 * colours
    bits = colours.bit_length() - 2
    out = b"GIF89a" + struct.pack("<HHBBB", screen[0], screen[1], 0, 0, 0)
    out += b"\x21\xf9\x04\x00\x00\x00\x00\x00"                       # graphic control extension
    out += b"\x2c" + struct.pack("<HHHHB", 0, 0, frame[0], frame[1], 0x80 | bits) + b"\x00" * table
    out += b"\x02" + b"\x02\x4c\x01" + b"\x00" + b"\x3b"
    return out


def test_a_gif_frame_larger_than_its_header_is_refused_before_decoding():
    with pytest.raises(ImageError, match=r"GIF frame reaching 9000x9000 pixels \(the header says 10x10\)"):
        decode_image(gif((10, 10), (9000, 9000)), max_pixels=40000000)


def test_real_gifs_decode_and_their_frames_are_read():
    import io
    from PIL import Image
    from edge.imageio import _gif_frames
    frames = [Image.new("RGB", (64, 48), (i * 40, 90, 200 - i * 40)) for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    data = out.getvalue()
    found = _gif_frames(data)      # Pillow may store later frames as the rectangle that changed
    assert len(found) == 3 and found[0] == (64, 48) and all(r <= 64 and b <= 48 for r, b in found)
    image = decode_image(data)
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    with pytest.raises(ImageError, match="64x48 pixels, outside the limit"):
        decode_image(data, max_pixels=1000)


def test_a_corrupt_gif_is_a_clear_error():
    with pytest.raises(ImageError, match="could not be decoded"):
        decode_image(gif((8, 8), (8, 8)))


def test_pillow_bomb_error_is_our_error(monkeypatch):
    from PIL import Image
    from edge import imageio
    import io
    big = io.BytesIO()
    Image.new("RGB", (200, 200), (10, 20, 30)).save(big, format="GIF")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)     # 200x200 is then over twice the limit
    with pytest.raises(ImageError, match="too large to decode safely"):
        imageio._decode_gif_pillow(big.getvalue(), "x.gif")


@pytest.mark.parametrize("kind", ["grey", "bgr", "bgra"])
def test_16_bit_png_decodes_as_its_8_bit_self(facedata, kind):
    import cv2
    photo = cv2.imread(known(facedata, "obama.jpg"))
    if kind == "grey":
        photo = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    elif kind == "bgra":
        photo = cv2.cvtColor(photo, cv2.COLOR_BGR2BGRA)
    eight = decode_image(cv2.imencode(".png", photo)[1].tobytes())
    sixteen = decode_image(cv2.imencode(".png", photo.astype(np.uint16) * 257)[1].tobytes())
    assert sixteen.dtype == np.uint8 and sixteen.shape == eight.shape and sixteen.shape[2] == 3
    assert int(np.abs(sixteen.astype(int) - eight.astype(int)).max()) <= 1
