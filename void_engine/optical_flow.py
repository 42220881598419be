"""Optical flow: the one home for it (propagation, pass-2 noise warping, the morphing gate).

Convention: flow(a, b) is an (H, W, 2) float32 array of (dx, dy) such that pixel (x, y) of
frame a moves to (x + dx, y + dy) in frame b. `backward_warp(img_b, flow(a, b))` therefore
resamples frame b onto frame a's grid.
"""
from __future__ import annotations

import cv2
import numpy as np

_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def to_gray(frame: np.ndarray) -> np.ndarray:
    """uint8 grey, C-contiguous (DIS refuses sliced arrays)."""
    if frame.ndim == 3:
        frame = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    if frame.dtype != np.uint8:
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(frame)


def dis_flow(a: np.ndarray, b: np.ndarray, preset: str = "medium") -> np.ndarray:
    """OpenCV DIS optical flow from frame a to frame b (RGB or grey uint8)."""
    dis = cv2.DISOpticalFlow_create(_PRESETS[preset])
    return dis.calc(to_gray(a), to_gray(b), None).astype(np.float32)


def backward_warp(image: np.ndarray, flow: np.ndarray,
                  interpolation: int = cv2.INTER_LINEAR,
                  border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Sample `image` at (x + dx, y + dy) for every pixel (x, y) of the flow's grid."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, gx + flow[..., 0], gy + flow[..., 1], interpolation,
                     borderMode=border)


def out_of_frame(flow: np.ndarray) -> np.ndarray:
    """Boolean map of pixels whose flow target falls outside the frame."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    x, y = gx + flow[..., 0], gy + flow[..., 1]
    return (x < 0) | (x > w - 1) | (y < 0) | (y > h - 1)


def forward_backward_error(fwd: np.ndarray, bwd: np.ndarray) -> np.ndarray:
    """|fwd + bwd(warped)| per pixel: large where the flow is unreliable (occlusions)."""
    bwd_at_target = backward_warp(bwd, fwd)
    return np.linalg.norm(fwd + bwd_at_target, axis=-1)


# --- RAFT-large (torchvision) from a local weights file ------------------------------------------
def load_raft_large(weights_path, device="cpu"):
    """torchvision RAFT-large with weights from a local file (never downloads).

    The file is a plain state dict, e.g. torchvision's raft_large_C_T_SKHT_V2-ff5fadd5.pth.
    """
    import torch
    from torchvision.models.optical_flow import raft_large

    from void_engine.errors import ModelLoadError

    try:
        state = torch.load(str(weights_path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelLoadError(f"cannot read RAFT weights {weights_path}: {e}") from e
    model = raft_large(weights=None, progress=False)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelLoadError(f"RAFT weights {weights_path} do not fit RAFT-large: "
                             f"{str(e).splitlines()[0]}") from e
    return model.eval().requires_grad_(False).to(device)


def raft_flow(a: np.ndarray, b: np.ndarray, model, num_updates: int = 12) -> np.ndarray:
    """RAFT flow from RGB uint8 frame a to frame b, (H, W, 2) float32 (dx, dy).

    RAFT needs sides divisible by 8 (frames are edge-padded, the flow cropped back) and feature
    maps of at least 16 px, i.e. frames of 128 px: smaller frames are upsampled for RAFT and the
    flow is brought back to their size.
    """
    import torch
    import torch.nn.functional as F

    h, w = a.shape[:2]
    scale = max(1.0, 128.0 / min(h, w))
    sh, sw = int(np.ceil(h * scale)), int(np.ceil(w * scale))
    ph, pw = (-sh) % 8, (-sw) % 8
    dev = next(model.parameters()).device

    def prep(x):
        t = torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None].float()
        t = t / 127.5 - 1.0
        if (sh, sw) != (h, w):
            t = F.interpolate(t, size=(sh, sw), mode="bilinear", align_corners=False)
        return F.pad(t, (0, pw, 0, ph), mode="replicate").to(dev)

    with torch.no_grad():
        flow = model(prep(a), prep(b), num_flow_updates=num_updates)[-1][:, :, :sh, :sw]
        if (sh, sw) != (h, w):
            flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
            flow = flow * torch.tensor([w / sw, h / sh], device=flow.device).view(1, 2, 1, 1)
    return flow[0].permute(1, 2, 0).float().cpu().numpy()
