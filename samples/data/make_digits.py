"""Writes the small image sets the CNN samples train on (run with numpy):

  digits_x.npy  [32, 1, 28, 28] float32   digits_y.npy  [32] int64
  blocks_x.npy  [16, 2, 8, 8]  float32    blocks_y.npy  [16] int64

The digits are drawn from a 5x7 bitmap font, scaled to 20x28-pixel strokes,
shifted by up to 2 pixels and blurred with noise, so that lecture 10's
network has something digit-like to learn without MNIST in the repository.
The blocks are two-channel 8x8 patterns of four classes for the residual
and inception samples. Fixed seeds: the files are the same on every run.
"""
import os

import numpy as np

FONT = {  # 5 columns x 7 rows
    0: ["01110", "10001", "10011", "10101", "11001", "10001", "01110"],
    1: ["00100", "01100", "00100", "00100", "00100", "00100", "01110"],
    2: ["01110", "10001", "00001", "00010", "00100", "01000", "11111"],
    3: ["11110", "00001", "00001", "01110", "00001", "00001", "11110"],
    4: ["00010", "00110", "01010", "10010", "11111", "00010", "00010"],
    5: ["11111", "10000", "11110", "00001", "00001", "10001", "01110"],
    6: ["00110", "01000", "10000", "11110", "10001", "10001", "01110"],
    7: ["11111", "00001", "00010", "00100", "01000", "01000", "01000"],
    8: ["01110", "10001", "10001", "01110", "10001", "10001", "01110"],
    9: ["01110", "10001", "10001", "01111", "00001", "00010", "01100"],
}


def digit(d, rng):
    glyph = np.array([[int(c) for c in row] for row in FONT[d]], dtype=np.float32)
    big = np.kron(glyph, np.ones((3, 3), dtype=np.float32))  # 21 x 15
    img = np.zeros((28, 28), dtype=np.float32)
    dy, dx = rng.integers(1, 6), rng.integers(4, 11)
    img[dy:dy + 21, dx:dx + 15] = big
    # soften the strokes a little and add noise
    soft = img.copy()
    soft[1:, :] += 0.3 * img[:-1, :]
    soft[:, 1:] += 0.3 * img[:, :-1]
    soft += rng.normal(0, 0.1, soft.shape).astype(np.float32)
    return np.clip(soft, 0, 1).astype(np.float32)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    rng = np.random.default_rng(10)
    ys = np.array([i % 10 for i in range(32)], dtype=np.int64)
    rng.shuffle(ys)
    xs = np.stack([digit(int(d), rng)[None] for d in ys]).astype(np.float32)
    np.save(os.path.join(here, "digits_x.npy"), xs)
    np.save(os.path.join(here, "digits_y.npy"), ys)

    rng = np.random.default_rng(11)
    bx, by = [], []
    for i in range(16):
        c = i % 4
        img = rng.normal(0, 0.2, (2, 8, 8)).astype(np.float32)
        if c == 0:
            img[0, 2:6, 2:6] += 1          # a square in channel 0
        elif c == 1:
            img[1, :, 3:5] += 1            # a vertical bar in channel 1
        elif c == 2:
            img[0, 3:5, :] += 1            # a horizontal bar in channel 0
        else:
            img[:, np.arange(8), np.arange(8)] += 1  # a diagonal in both
        bx.append(img)
        by.append(c)
    np.save(os.path.join(here, "blocks_x.npy"), np.stack(bx).astype(np.float32))
    np.save(os.path.join(here, "blocks_y.npy"), np.array(by, dtype=np.int64))


if __name__ == "__main__":
    main()
