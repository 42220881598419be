"""Masks from clicks: SAM2 segmentation (segment), VLM interaction reasoning into quadmasks
(reasoning, vlm/, grey, fallback, grid), grounding of the objects the VLM names (grounding,
locate), and the pass-2 morphing gate (gate, with an optional VLM judge in judge).
See docs/masks.md.

Stage entry points (called by tasks/ and `void-batch masks`):
    models.MaskModels(sam2=..., grounding=...)   # loads each model once; for resident workers
        .segment_shot(plate_uri, prompts_json, out_uri, *, shot_id, ...) -> black mask uri
        .build_quadmask(plate_uri, black_mask_uri, out_uri, *, shot_id, instruction, ...)
            -> QuadmaskResult (path, reason, degraded, prompt_uri, ...)
    segment.segment_shot / reasoning.build_quadmask   # the same with per-process shared models
    gate.morphing_gate(decoded, pass1_path, *, threshold=None, judge=None) -> GateResult
    judge.vlm_judge(vlm_config) -> a judge for morphing_gate (can only add pass 2)
"""
