"""Draws icons/source.png (1024x1024), the source of the app icon set (`npx tauri icon icons/source.png -o icons`).

Three overlapping pigment drops (cyan, magenta, yellow, mixed subtractively) on a dark rounded square. Pure
Python (zlib + struct) so it runs anywhere without an imaging library.
"""

import math
import struct
import zlib

SIZE = 1024


def coverage(distance, radius):
    """Anti-aliased coverage of a disc edge: 1 inside, 0 outside, linear over one pixel."""
    return max(0.0, min(1.0, radius - distance + 0.5))


def pixel(x, y):
    cx, cy = x + 0.5, y + 0.5
    # Rounded square background.
    margin, corner = 64, 200
    qx = max(abs(cx - SIZE / 2) - (SIZE / 2 - margin - corner), 0.0)
    qy = max(abs(cy - SIZE / 2) - (SIZE / 2 - margin - corner), 0.0)
    alpha = coverage(math.hypot(qx, qy), corner)
    if alpha == 0.0:
        return (0, 0, 0, 0)
    r, g, b = 0.10, 0.11, 0.15
    # Subtractive mix: each drop absorbs one primary.
    absorb = [0.0, 0.0, 0.0]
    for (dx, dy, channel) in ((0, -110, 0), (-100, 70, 1), (100, 70, 2)):
        c = coverage(math.hypot(cx - (SIZE / 2 + dx), cy - (SIZE / 2 + dy)), 230)
        absorb[channel] = max(absorb[channel], c)
    drops = max(absorb)
    if drops > 0:
        mixed = [1.0 - 0.92 * a for a in absorb]
        r, g, b = (r * (1 - drops) + m * drops for m, r in zip(mixed, (r, g, b)))
    return tuple(int(round(v * 255)) for v in (r, g, b)) + (int(round(alpha * 255)),)


def main():
    rows = []
    for y in range(SIZE):
        row = bytearray([0])
        for x in range(SIZE):
            row.extend(pixel(x, y))
        rows.append(bytes(row))
    raw = zlib.compress(b"".join(rows), 9)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", SIZE, SIZE, 8, 6, 0, 0, 0))
    png += chunk(b"IDAT", raw) + chunk(b"IEND", b"")
    with open("icons/source.png", "wb") as out:
        out.write(png)


if __name__ == "__main__":
    main()
