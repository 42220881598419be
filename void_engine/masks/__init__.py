"""Masks from clicks: SAM2 segmentation (segment), VLM interaction reasoning into quadmasks
(reasoning, vlm/, grey, fallback, grid) and the pass-2 morphing gate (gate).

Stage entry points (called by tasks/ and `void-batch masks`):
    segment.segment_shot(plate_uri, prompts_json, out_uri, *, shot_id, ...) -> black mask uri
    reasoning.build_quadmask(plate_uri, black_mask_uri, out_uri, *, shot_id, instruction, ...)
    gate.morphing_gate(decoded, pass1_path, *, threshold=None) -> GateResult
"""
