"""What the VLM is shown and asked: sampled frames (downscaled, primary object tinted red, grid
in the colour the text names, frame index written on each) and a prompt asking for the
objects the removal affects, where, and how sure it is. Frames only, never the raw video.

PROMPT_VERSION goes into every VLM cache key: bump it whenever the text, the images or the
schema change, so a cached answer is never reused for a different question.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import cv2
import numpy as np

from void_engine.masks.grid import Grid
from void_engine.masks.vlm.schema import CATEGORIES, EFFECTS, MAX_AFFECTED, answer_schema

PROMPT_VERSION = "quadmask-vlm-v2"  # v2: boxes on integral belongings

# RGB; the text below names the colour, so they must change together
GRID_COLOUR_NAME = "yellow"
GRID_COLOUR = (255, 255, 0)
TINT = (255, 0, 0)  # red tint on the object to remove


@dataclass
class VlmRequest:
    """One question to a VLM backend; backends turn it into their wire format."""

    system: str
    text: str
    images: list[bytes]  # JPEG, in the order the text refers to them
    schema: dict
    rows: int
    cols: int
    num_frames: int
    frame_indices: list[int] = field(default_factory=list)

    def digest(self) -> str:
        """Content hash of everything the model sees (for cache keys)."""
        h = hashlib.sha256()
        h.update(self.system.encode())
        h.update(self.text.encode())
        h.update(json.dumps(self.schema, sort_keys=True).encode())
        for img in self.images:
            h.update(hashlib.sha256(img).digest())
        return h.hexdigest()


def sample_indices(num_frames: int, count: int) -> list[int]:
    """`count` frame indices spread evenly over the clip, first and last included."""
    if num_frames <= count:
        return list(range(num_frames))
    return sorted({round(i * (num_frames - 1) / (count - 1)) for i in range(count)})


def render_frame(frame: np.ndarray, black: np.ndarray, grid: Grid, index: int,
                 max_side: int) -> bytes:
    """Downscale, tint the object red, draw the grid, label; return JPEG bytes."""
    h, w = frame.shape[:2]
    s = min(1.0, max_side / max(h, w))
    size = (max(1, round(w * s)), max(1, round(h * s)))
    img = cv2.resize(frame, size, interpolation=cv2.INTER_AREA) if s < 1 else frame.copy()
    obj = cv2.resize((np.asarray(black) < 128).astype(np.uint8), size,
                     interpolation=cv2.INTER_NEAREST).astype(bool)
    img = img.astype(np.float32)
    img[obj] = 0.6 * img[obj] + 0.4 * np.array(TINT, np.float32)
    img = grid.draw(img.astype(np.uint8), GRID_COLOUR, label=f"frame {index}")
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise RuntimeError("JPEG encoding of a VLM frame failed")
    return buf.tobytes()


SYSTEM = ("You are a careful video analyst for a visual-effects object-removal tool. "
          "You answer with one JSON object that follows the given schema, and nothing else.")


def build_request(frames: dict[int, np.ndarray], blacks: dict[int, np.ndarray], *,
                  instruction: str, grid: Grid, num_frames: int,
                  max_side: int = 768) -> VlmRequest:
    """frames/blacks: {clip frame index: RGB frame / black mask (0 = object)} for the sampled
    frames. Indices in the answer refer to the same clip frame numbering."""
    idx = sorted(frames)
    images = [render_frame(frames[i], blacks[i], grid, i, max_side) for i in idx]
    schema = answer_schema(grid.rows, grid.cols, num_frames)
    text = _prompt_text(instruction, grid, num_frames, idx)
    return VlmRequest(system=SYSTEM, text=text, images=images, schema=schema, rows=grid.rows,
                      cols=grid.cols, num_frames=num_frames, frame_indices=idx)


def _prompt_text(instruction: str, grid: Grid, num_frames: int, idx: list[int]) -> str:
    instruction = instruction.strip() or "remove the object tinted red"
    return f"""The images are {len(idx)} frames of one shot ({num_frames} frames in all, numbered 0 to {num_frames - 1}); each image is labelled with its frame number: {", ".join(map(str, idx))}.
A {GRID_COLOUR_NAME} grid of {grid.rows} rows x {grid.cols} columns is drawn on every frame; rows are numbered 0-{grid.rows - 1} down the left edge, columns 0-{grid.cols - 1} along the top.
The object tinted red is the PRIMARY object. Edit instruction: "{instruction}".

When the primary object is removed, which OTHER things in the shot change? List at most {MAX_AFFECTED}:
- category "visual_artifact": shadows, reflections, wakes, ripples, splashes, footprints of the primary; they vanish with it.
- category "physical": objects the primary holds up, pushes, hits, carries or deforms. Set will_move=true if, without the primary, the object would move, fall or keep its shape differently (e.g. it is held up against gravity, or it was pushed or knocked by the primary); resting objects that are merely touched stay put (will_move=false).
- effect: one of {", ".join(EFFECTS)}.
Do not list the primary object itself, untouched background, or other agents that never touch it.

For each affected object give:
- grid_localizations: for several of the labelled frames, every grid cell (row, col) the object or effect covers in that frame; include the cells where it WOULD be without the primary. Err on the side of more cells.
- first_appears_frame: first frame where it is affected.
- if will_move: trajectory_path (3-5 keyframes of the cell at its centre) and object_size_grids (its size in cells, padded by one).
- optionally boxes [x0, y0, x1, y1] or points (x, y) on labelled frames, as fractions 0-1 of the frame width/height, tightly around the object, for a segmentation model.
- confidence 0-1.
Integral belongings (0-3): separate things removed together with the primary (a hat or backpack it wears, a bike or board it rides; not its clothing, not objects it merely holds), each as a short noun a detector can search for, optionally with boxes on labelled frames (fractions 0-1 as above).
scene_description: one or two sentences describing the shot WITHOUT the primary object.
confidence: your overall confidence 0-1. If nothing else is affected, return an empty affected_objects list.
Valid categories: {", ".join(CATEGORIES)}. Answer with JSON only, no other fields than the schema's."""
