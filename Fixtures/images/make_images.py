#!/usr/bin/env python3
"""Derives the image fixtures in this folder from scikit-image's sample photographs.

    pip download scikit-image==0.26.0 --no-deps -d /tmp/skimage && unzip -o /tmp/skimage/*.whl 'skimage/data/*' -d /tmp/skimage
    python Fixtures/images/make_images.py /tmp/skimage/skimage/data

Writes the photos (kept whole or re-encoded once) and small format variants under variants/,
each a different way of storing pixels that PIL's convert('RGB') maps to RGB. PNG kinds Pillow
cannot write (16-bit colour, 16-bit gray+alpha, Adam7 interlace) are written by the small
encoder below. Deterministic: the same Pillow gives the same bytes.
"""

import shutil
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
VARIANT_SIZE = (96, 64)


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png(path, samples, color_type, bit_depth=16, interlace=False):
    """samples: uint16/uint8 array (h, w, channels); rows written with filter 0."""
    height, width = samples.shape[:2]
    dtype = ">u2" if bit_depth == 16 else "u1"
    raw = samples.astype(dtype)

    def pass_bytes(image):
        return b"".join(b"\x00" + row.tobytes() for row in image)

    if interlace:
        # Adam7: pass p takes rows y0::dy and columns x0::dx; empty passes are skipped.
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
        data = b"".join(pass_bytes(raw[y0::dy, x0::dx]) for x0, y0, dx, dy in passes if raw[y0::dy, x0::dx].size)
    else:
        data = pass_bytes(raw)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 1 if interlace else 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(data, 9))
                     + png_chunk(b"IEND", b""))


def main(data):
    data = Path(data)
    photos = HERE
    # Photographs used whole through the eval transform and the model.
    shutil.copyfile(data / "chelsea.png", photos / "chelsea.png")  # PNG RGB 451x300
    shutil.copyfile(data / "rocket.jpg", photos / "rocket.jpg")  # baseline JPEG 640x427
    Image.open(data / "astronaut.png").convert("RGB").save(
        photos / "astronaut_progressive.jpg", quality=90, progressive=True, optimize=True)
    Image.open(data / "camera.png").convert("L").save(photos / "camera_gray.jpg", quality=90)

    # Small variants of one photograph in every storage kind the decoder handles.
    out = photos / "variants"
    out.mkdir(exist_ok=True)
    base = Image.open(data / "coffee.png").convert("RGB").resize(VARIANT_SIZE, Image.BICUBIC)
    rgb = np.asarray(base)
    height, width = rgb.shape[:2]
    ramp = np.linspace(0, 255, width, dtype=np.float64)[None, :].repeat(height, 0).astype(np.uint8)
    # Low bytes that differ from the high bytes, so taking the high byte and rounding differ.
    low = ((np.arange(width)[None, :] * 7 + np.arange(height)[:, None] * 13) & 0xFF).astype(np.uint16)

    base.save(out / "rgb.png")
    base.convert("L").save(out / "gray.png")
    base.convert("1").save(out / "bilevel.png")
    la = base.convert("L")
    la.putalpha(Image.fromarray(ramp))
    la.save(out / "gray_alpha.png")
    rgba = base.copy()
    rgba.putalpha(Image.fromarray(ramp))
    rgba.save(out / "rgba.png")
    base.quantize(200).save(out / "palette.png", transparency=0)
    base.quantize(16).save(out / "palette4.png", bits=4)
    base.convert("CMYK").save(out / "cmyk.jpg", quality=90)
    base.save(out / "ycbcr444.jpg", quality=90, subsampling=0)
    Image.fromarray((np.asarray(base.convert("L")).astype(np.uint16) * 257)).save(out / "gray16.png")
    write_png(out / "rgb16.png", rgb.astype(np.uint16) * 256 + low[..., None], color_type=2)
    rgba16 = np.concatenate([rgb.astype(np.uint16) * 256 + low[..., None], ramp[..., None].astype(np.uint16) * 257], 2)
    write_png(out / "rgba16.png", rgba16, color_type=6)
    gray = np.asarray(base.convert("L")).astype(np.uint16)
    write_png(out / "gray_alpha16.png", np.stack([gray * 256 + low, ramp.astype(np.uint16) * 257], 2), color_type=4)
    write_png(out / "interlaced.png", rgb, color_type=2, bit_depth=8, interlace=True)
    for path in sorted(photos.glob("*.*")) + sorted(out.glob("*.*")):
        if path.suffix in (".png", ".jpg"):
            im = Image.open(path)
            print(f"{path.relative_to(HERE)}: {im.format} {im.mode} {im.size} {path.stat().st_size} bytes")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
