"""Pictures of designs (PIL only): a per-user contact sheet and an optimisation-trajectory strip.

- `contact_sheet(title, rows)`: one row per category, the user's top catalogue items on the left and the top
  generated designs on the right, each with its preference score underneath (and the oracle's true preference
  when known), as the paper's "top-3 dataset vs top-3 GAN" figure.
- `trajectory_strip(title, images, scores)`: one row per restart (or item), one column per optimisation step,
  the score under each image, as the official `PM/gan_{c}.jpg`.
Images are uint8 (N, H, W, C) and are enlarged with nearest neighbour to `tile` pixels.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fashiongen import storage

PAD = 6
TEXT_H = 14
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
MUTED = (110, 110, 110)


@dataclass
class SheetRow:
    """One category of a contact sheet: real items and designs with their scores (NaN scores are skipped)."""

    label: str
    real_images: np.ndarray
    real_scores: np.ndarray
    generated_images: np.ndarray
    generated_scores: np.ndarray
    real_truth: np.ndarray | None = None
    generated_truth: np.ndarray | None = None


def _tile(image: np.ndarray, size: int) -> Image.Image:
    arr = image[:, :, 0] if image.shape[2] == 1 else image
    return Image.fromarray(np.ascontiguousarray(arr)).convert("RGB").resize((size, size), Image.Resampling.NEAREST)


def _caption(score: float, truth: float | None) -> str:
    text = f"{score:.2f}"
    return text if truth is None or np.isnan(truth) else f"{text} | {truth:.2f}"


def contact_sheet(title: str, rows: list[SheetRow], tile: int = 96) -> Image.Image:
    """Top catalogue items beside top designs, one row per category, scores under each image."""
    font = ImageFont.load_default()
    k_real = max((len(r.real_images) for r in rows), default=0)
    k_gen = max((len(r.generated_images) for r in rows), default=0)
    label_w = 90
    cell_w, cell_h = tile + PAD, tile + TEXT_H + PAD
    width = label_w + (k_real + k_gen) * cell_w + 3 * PAD
    header = 2 * TEXT_H + PAD
    sheet = Image.new("RGB", (width, header + len(rows) * cell_h + PAD), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((PAD, 2), title, fill=INK, font=font)
    gen_x = label_w + k_real * cell_w + 2 * PAD
    draw.text((label_w, TEXT_H + 2), f"catalogue top-{k_real}", fill=MUTED, font=font)
    draw.text((gen_x, TEXT_H + 2), f"generated top-{k_gen}", fill=MUTED, font=font)
    for r, row in enumerate(rows):
        y = header + r * cell_h
        draw.text((PAD, y + tile // 2), row.label[:14], fill=INK, font=font)
        for x0, images, scores, truth in ((label_w, row.real_images, row.real_scores, row.real_truth),
                                          (gen_x, row.generated_images, row.generated_scores, row.generated_truth)):
            for i, (image, score) in enumerate(zip(images, scores)):
                if np.isnan(score):
                    continue
                x = x0 + i * cell_w
                sheet.paste(_tile(image, tile), (x, y))
                draw.text((x, y + tile + 1), _caption(float(score), None if truth is None else float(truth[i])),
                          fill=INK, font=font)
    return sheet


def trajectory_strip(title: str, images: np.ndarray | Sequence[Sequence[np.ndarray]], scores: np.ndarray,
                     tile: int = 64) -> Image.Image:
    """images (rows, steps) of uint8 (H, W, C) (an array or nested lists, sizes may differ) and scores (rows, steps)
    -> a grid, step 0 on the left."""
    font = ImageFont.load_default()
    n_rows, n_steps = scores.shape
    cell_w, cell_h = tile + PAD, tile + TEXT_H + PAD
    header = TEXT_H + PAD
    strip = Image.new("RGB", (n_steps * cell_w + PAD, header + n_rows * cell_h), BACKGROUND)
    draw = ImageDraw.Draw(strip)
    draw.text((PAD, 2), title, fill=INK, font=font)
    for r in range(n_rows):
        for s in range(n_steps):
            x, y = PAD + s * cell_w, header + r * cell_h
            strip.paste(_tile(np.asarray(images[r][s]), tile), (x, y))
            draw.text((x, y + tile + 1), f"{scores[r, s]:.2f}", fill=INK, font=font)
    return strip


def save_png(image: Image.Image, uri: str) -> str:
    """Write a picture to a local path or s3:// URI; returns the URI."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    storage.write_bytes(uri, buf.getvalue())
    return uri
