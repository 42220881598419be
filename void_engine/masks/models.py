"""The mask stages' local models, loaded once and reused for every shot.

    models = MaskModels(sam2=Sam2Config(...), grounding=GroundingConfig(...))   # or from_env()
    models.segment_shot(plate, prompts, "black.mp4", shot_id="s1")        # SAM2
    r = models.build_quadmask(plate, "black.mp4", "q.mp4", shot_id="s1", instruction="...",
                              vlm=VlmConfig.from_env())                  # VLM + grounding
    models.describe()   # what is configured, what is loaded, shots served

A resident worker (a Ray actor) holds one MaskModels; each model is built on first use, under
a lock, and never again. The module-level stage functions (segment.segment_shot,
reasoning.build_quadmask) use `shared_models`, one MaskModels per configuration and process.
The VLM is a remote service and stays a per-call argument.
"""
from __future__ import annotations

import functools
import threading

from void_engine.errors import ModelLoadError
from void_engine.masks import grounding as grounding_mod
from void_engine.masks import segment
from void_engine.masks.grounding import GroundingConfig
from void_engine.masks.segment import Sam2Config


class MaskModels:
    def __init__(self, sam2: Sam2Config | None = None,
                 grounding: GroundingConfig | None = None):
        if grounding is not None and not _usable(sam2):
            raise ModelLoadError(f"the grounding model {grounding.model} needs SAM2 to turn its "
                                 "boxes into masks: set VOID_SAM2_CHECKPOINT")
        self.sam2_config, self.grounding_config = sam2, grounding
        self._sam2 = self._detector = None
        self._lock = threading.Lock()
        self.loads = {"sam2": 0, "grounding": 0}
        self.shots = {"segmentation": 0, "quadmask": 0}

    @classmethod
    def from_env(cls) -> MaskModels:
        """What workers run: VOID_SAM2_* and VOID_GROUNDING_* (see README)."""
        return cls(sam2=Sam2Config.from_env(), grounding=GroundingConfig.from_env())

    @property
    def has_sam2(self) -> bool:
        """A SAM2 that can be loaded is configured (a checkpoint, or random weights asked for)."""
        return _usable(self.sam2_config)

    def sam2(self):
        """The SAM2 video predictor (built on first call). ModelLoadError when not configured."""
        with self._lock:
            if self._sam2 is None:
                self._sam2 = segment.load_predictor(self.sam2_config or Sam2Config())
                self.loads["sam2"] += 1
            return self._sam2

    def detector(self) -> grounding_mod.Detector | None:
        """The grounding detector (built on first call), or None when none is configured."""
        if self.grounding_config is None:
            return None
        with self._lock:
            if self._detector is None:
                self._detector = grounding_mod.load_detector(self.grounding_config)
                self.loads["grounding"] += 1
            return self._detector

    def segment_shot(self, plate_uri: str, prompts_json: dict, out_uri: str, *, shot_id: str,
                     frame_range: tuple[int, int] | None = None, progress=None) -> str:
        """The segmentation stage (see segment.segment_with): the black mask's URI."""
        self.shots["segmentation"] += 1
        return segment.segment_with(self.sam2, self.sam2_config or Sam2Config(), plate_uri,
                                    prompts_json, out_uri, shot_id=shot_id,
                                    frame_range=frame_range, progress=progress)

    def build_quadmask(self, plate_uri: str, black_mask_uri: str, out_uri: str, *,
                       shot_id: str, instruction: str, **kw):
        """The quadmask stage (see reasoning.quadmask_with): a QuadmaskResult."""
        from void_engine.masks.reasoning import quadmask_with

        self.shots["quadmask"] += 1
        return quadmask_with(self, plate_uri, black_mask_uri, out_uri, shot_id=shot_id,
                             instruction=instruction, **kw)

    def key_facts(self) -> dict:
        """What changes the masks for the same inputs (for the stages' cache keys)."""
        s, g = self.sam2_config, self.grounding_config
        return {"sam2": [s.checkpoint, s.model_config, s.image_size, s.work_long_side,
                         s.dilate_px] if _usable(s) else None,
                "grounding": [g.model, g.threshold, g.detect_frames] if g else None}

    def describe(self) -> dict:
        """For operators: configuration, what is loaded, how often, shots served."""
        return {**self.key_facts(), "loaded": [k for k, v in (("sam2", self._sam2),
                                                              ("grounding", self._detector))
                                               if v is not None],
                "loads": dict(self.loads), "shots": dict(self.shots)}


def _usable(config: Sam2Config | None) -> bool:
    return config is not None and (config.checkpoint is not None or config.allow_random_weights)


@functools.lru_cache(maxsize=4)
def shared_models(sam2: Sam2Config | None = None,
                  grounding: GroundingConfig | None = None) -> MaskModels:
    """One MaskModels per configuration in this process (configs are frozen, so hashable)."""
    return MaskModels(sam2=sam2, grounding=grounding)
