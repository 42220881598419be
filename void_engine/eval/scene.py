"""One counterfactual scene, rendered twice from the same description: with the object and
without it (numpy + OpenCV only, deterministic from the spec).

World coordinates are frame 0's pixel grid. A camera (static, pan or zoom) maps world to
screen per frame as an affine matrix; every layer is a sprite (RGB + alpha in its own
coordinates) placed in the world and warped to the screen through the camera:

    textured background  ->  cast shadows (soft, darken)  ->  reflection (faded mirror)
    ->  the pushed object (interaction, optional)  ->  the object

The clean render leaves out the object, its shadow and its reflection, and the pushed object
stays where it rests. Both renders share the background's pixels bit for bit, so the clip
and its ground truth differ only where a layer touches: that is what the quadmask marks.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from void_engine import quadmask as qm


@dataclass(frozen=True)
class SceneSpec:
    """Everything a clip is rendered from. Lengths are in pixels of the clip's own size."""

    seed: int
    height: int
    width: int
    frames: int
    camera: str = "static"  # static | pan | zoom
    camera_velocity: tuple[float, float] = (0.0, 0.0)  # pan: world px/frame the view moves
    zoom_rate: float = 0.0  # zoom: scale factor change per frame (0.01 = 1%/frame)
    kind: str = "mover"  # mover: crosses the view; occluder: large, slides in and stops
    radius: float = 40.0  # half size of the object
    start: tuple[float, float] = (100.0, 100.0)  # object centre in frame 0 (world)
    velocity: tuple[float, float] = (3.0, 0.0)  # world px/frame
    shadow: bool = True
    shadow_strength: float = 0.55
    reflection: bool = False
    interaction: bool = False  # a box on the object's path that it pushes

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SceneSpec:
        d = dict(d)
        for k in ("camera_velocity", "start", "velocity"):
            d[k] = tuple(d[k])
        return cls(**d)


@dataclass
class Sprite:
    rgb: np.ndarray  # (h, w, 3) float32 0..255
    alpha: np.ndarray  # (h, w) float32 0..1


def texture(h: int, w: int, rng: np.random.Generator, contrast: float = 1.0) -> np.ndarray:
    """Colour texture with structure at several scales (so flow and SSIM have something to
    hold on to): blurred noise octaves plus a few random lines and blocks. float32 0..255."""
    out = np.zeros((h, w, 3), np.float32)
    for sigma, weight in ((24.0, 0.5), (6.0, 0.3), (1.5, 0.2)):
        small = (max(2, int(h / sigma)), max(2, int(w / sigma)))
        noise = rng.uniform(-1, 1, (*small, 3)).astype(np.float32)
        out += weight * cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    out = 128 + 150 * contrast * out
    base = rng.uniform(60, 190, 3).astype(np.float32)
    out = 0.6 * out + 0.4 * base
    for _ in range(max(4, (h * w) // 20000)):
        colour = tuple(float(c) for c in rng.uniform(20, 235, 3))
        p = rng.uniform(0, 1, 4) * [w, h, w, h]
        if rng.uniform() < 0.5:
            cv2.line(out, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), colour,
                     int(rng.integers(1, 4)), cv2.LINE_AA)
        else:
            x, y = int(p[0]), int(p[1])
            s = int(rng.integers(4, max(5, min(h, w) // 10)))
            cv2.rectangle(out, (x, y), (x + s, y + s), colour, -1, cv2.LINE_AA)
    return np.clip(out, 0, 255)


def object_sprite(radius: float, rng: np.random.Generator, shape: str) -> Sprite:
    """Textured object with an anti-aliased outline (drawn 4x larger, then area-reduced)."""
    size = int(np.ceil(2 * radius)) + 2
    big = np.zeros((4 * size, 4 * size), np.float32)
    c, r = 2 * size, 4 * radius
    if shape == "ellipse":
        cv2.ellipse(big, (c, c), (int(r), int(r * rng.uniform(0.6, 1.0))),
                    float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    else:  # a box with rounded corners
        k = int(r * 0.75)
        cv2.rectangle(big, (c - k, c - k), (c + k, c + k), 1.0, -1)
        big = cv2.GaussianBlur(big, (0, 0), r * 0.08)
        big = (big > 0.5).astype(np.float32)
    alpha = cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)
    rgb = texture(size, size, rng, contrast=1.3)
    rgb = 0.4 * rgb + 0.6 * rng.uniform(20, 235, 3).astype(np.float32)
    return Sprite(rgb.astype(np.float32), alpha)


def _affine(m: np.ndarray) -> np.ndarray:
    return np.asarray(m, np.float64)[:2]


def translate(x: float, y: float) -> np.ndarray:
    return np.array([[1, 0, x], [0, 1, y], [0, 0, 1]], np.float64)


def scale(sx: float, sy: float) -> np.ndarray:
    return np.diag([sx, sy, 1.0])


def paste(frame: np.ndarray, sprite: Sprite, to_screen: np.ndarray, *,
          mode: str = "over", opacity: float = 1.0, blur: float = 0.0) -> np.ndarray:
    """Composite `sprite` into `frame` (float32, in place) through the 3x3 sprite->screen
    matrix. mode "over": alpha blend; "shadow": darken by alpha (RGB unused). Returns the
    layer's alpha on the screen (H, W) (zero where it does not reach)."""
    h, w = frame.shape[:2]
    sh, sw = sprite.alpha.shape
    pad = int(np.ceil(3 * blur)) + 2
    corners = (to_screen @ np.array([[0, sw, 0, sw], [0, 0, sh, sh], [1, 1, 1, 1]]))[:2]
    x0 = max(0, int(np.floor(corners[0].min())) - pad)
    x1 = min(w, int(np.ceil(corners[0].max())) + pad)
    y0 = max(0, int(np.floor(corners[1].min())) - pad)
    y1 = min(h, int(np.ceil(corners[1].max())) + pad)
    full = np.zeros((h, w), np.float32)
    if x1 <= x0 or y1 <= y0:
        return full
    m = _affine(translate(-x0, -y0) @ to_screen)
    box = (x1 - x0, y1 - y0)
    a = cv2.warpAffine(sprite.alpha, m, box, flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if blur > 0:
        a = cv2.GaussianBlur(a, (0, 0), blur)
        a[a < 0.01] = 0.0  # a compact support, so the quadmask stays a solid region
    a *= opacity
    crop = frame[y0:y1, x0:x1]
    if mode == "shadow":
        crop *= (1.0 - a)[..., None]
    else:
        rgb = cv2.warpAffine(sprite.rgb, m, box, flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
        crop += a[..., None] * (rgb - crop)
    full[y0:y1, x0:x1] = a
    return full


class Scene:
    """The renderer of one SceneSpec: `frame(t)` -> (clip, ground truth, quadmask)."""

    def __init__(self, spec: SceneSpec):
        self.spec = spec
        rng = np.random.default_rng(spec.seed)
        self.origin, canvas_size = self._canvas_extent()
        self.canvas = texture(canvas_size[0], canvas_size[1], rng)
        self.object = object_sprite(spec.radius, rng, "ellipse" if rng.uniform() < 0.6
                                    else "box")
        self.box = object_sprite(0.6 * spec.radius, rng, "box")
        self.shadow_dx = float(rng.uniform(-0.6, 0.6) * spec.radius)
        self.reflection_sprite = self._reflection(self.object)

    # --- geometry -------------------------------------------------------------------------
    def camera(self, t: int) -> np.ndarray:
        """World -> screen, 3x3."""
        s = self.spec
        if s.camera == "pan":
            return translate(-s.camera_velocity[0] * t, -s.camera_velocity[1] * t)
        if s.camera == "zoom":
            cx, cy = s.width / 2, s.height / 2
            k = (1.0 + s.zoom_rate) ** t
            return translate(cx, cy) @ scale(k, k) @ translate(-cx, -cy)
        return np.eye(3)

    def _canvas_extent(self) -> tuple[tuple[int, int], tuple[int, int]]:
        s = self.spec
        corners = np.array([[0, s.width, 0, s.width], [0, 0, s.height, s.height],
                            [1, 1, 1, 1]], np.float64)
        pts = np.concatenate([(np.linalg.inv(self.camera(t)) @ corners)[:2]
                              for t in range(s.frames)], axis=1)
        x0, y0 = np.floor(pts.min(axis=1)).astype(int) - 4
        x1, y1 = np.ceil(pts.max(axis=1)).astype(int) + 4
        return (int(x0), int(y0)), (int(y1 - y0), int(x1 - x0))

    def travelled(self, t: int) -> float:
        """Distance the object has moved along its path by frame t."""
        s = self.spec
        moving = t if s.kind == "mover" else min(t, s.frames // 2)
        return float(np.hypot(*s.velocity)) * moving

    def centre(self, t: int) -> np.ndarray:
        s = self.spec
        return np.asarray(s.start) + self._direction() * self.travelled(t)

    def _direction(self) -> np.ndarray:
        v = np.asarray(self.spec.velocity, np.float64)
        n = np.hypot(*v)
        return v / n if n > 0 else np.array([1.0, 0.0])

    def box_centre(self, t: int, *, clean: bool) -> np.ndarray:
        """The pushed box: at rest on the path (contact at 40% of the clip) until the
        object's leading edge reaches it, then carried along; never moves in the clean
        render."""
        s = self.spec
        gap = s.radius + 0.6 * s.radius + 1
        rest = self.travelled(int(0.4 * s.frames)) + gap
        along = rest if clean else max(rest, self.travelled(t) + gap)
        return np.asarray(s.start) + self._direction() * along

    # --- layers ---------------------------------------------------------------------------
    @staticmethod
    def _reflection(sprite: Sprite) -> Sprite:
        fade = np.linspace(0.5, 0.0, sprite.alpha.shape[0], dtype=np.float32)[:, None]
        return Sprite(np.flipud(sprite.rgb).copy(), np.flipud(sprite.alpha) * fade)

    @staticmethod
    def _placed(sprite: Sprite, centre: np.ndarray) -> np.ndarray:
        h, w = sprite.alpha.shape
        return translate(centre[0] - w / 2, centre[1] - h / 2)

    def _shadow(self, frame, cam, sprite: Sprite, centre, radius: float) -> np.ndarray:
        h, w = sprite.alpha.shape
        place = (translate(centre[0] - 0.575 * w + self.shadow_dx, centre[1] + radius
                           - 0.175 * h) @ scale(1.15, 0.35))
        return paste(frame, sprite, cam @ place, mode="shadow",
                     opacity=self.spec.shadow_strength, blur=0.15 * radius)

    def _render(self, t: int, *, clean: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        s, cam = self.spec, self.camera(t)
        bg = cv2.warpAffine(self.canvas, _affine(cam @ translate(*self.origin)),
                            (s.width, s.height), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT)
        layers: dict[str, np.ndarray] = {}
        c, b = self.centre(t), self.box_centre(t, clean=clean)
        if s.interaction and s.shadow:
            layers["box_shadow"] = self._shadow(bg, cam, self.box, b, 0.6 * s.radius)
        if not clean and s.shadow:
            layers["shadow"] = self._shadow(bg, cam, self.object, c, s.radius)
        if not clean and s.reflection:
            h = self.object.alpha.shape[0]
            layers["reflection"] = paste(bg, self.reflection_sprite, cam @ self._placed(
                self.reflection_sprite, c + (0, h)), opacity=0.9)
        if s.interaction:
            layers["box"] = paste(bg, self.box, cam @ self._placed(self.box, b))
        if not clean:
            layers["object"] = paste(bg, self.object, cam @ self._placed(self.object, c))
        return bg, layers

    def frame(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(clip frame, ground-truth frame, quadmask frame): uint8 RGB, RGB, (H, W)."""
        with_obj, layers = self._render(t, clean=False)
        without, clean_layers = self._render(t, clean=True)
        clip = np.clip(np.rint(with_obj), 0, 255).astype(np.uint8)
        truth = np.clip(np.rint(without), 0, 255).astype(np.uint8)
        obj = layers["object"] > 0
        affected = np.zeros_like(obj)
        for name in ("shadow", "reflection"):
            if name in layers:
                affected |= layers[name] > 0
        if self.spec.interaction and not np.array_equal(
                self.box_centre(t, clean=False), self.box_centre(t, clean=True)):
            for name in ("box", "box_shadow"):
                if name in layers:
                    affected |= (layers[name] > 0) | (clean_layers[name] > 0)
        # Whatever else differs (a rounding that a layer's support missed) is affected too:
        # outside the quadmask, clip and ground truth are the same pixels, by construction.
        affected |= (clip != truth).any(axis=-1) & ~obj
        return clip, truth, qm.from_binary(obj, affected)

    def object_speed(self, t: int) -> float:
        """Screen-space speed of the object's centre between frames t and t+1 (px/frame)."""
        a = self.camera(t) @ np.append(self.centre(t), 1)
        b = self.camera(t + 1) @ np.append(self.centre(t + 1), 1)
        return float(np.hypot(*(b - a)[:2]))

    def camera_speed(self, t: int) -> float:
        """Mean screen displacement of the frame's corners between t and t+1 (px/frame)."""
        s = self.spec
        corners = np.array([[0, s.width, 0, s.width], [0, 0, s.height, s.height],
                            [1, 1, 1, 1]], np.float64)
        world = np.linalg.inv(self.camera(t)) @ corners
        moved = (self.camera(t + 1) @ world)[:2] - corners[:2]
        return float(np.hypot(*moved).mean())
