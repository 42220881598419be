"""Tiny RANDOM-WEIGHT zero-shot detectors written as real model folders (config, processor,
tokenizer, safetensors), loaded by the production loader like a downloaded model.

Their scores mean nothing: they prove the plumbing (names in, boxes out, boxes into SAM2), not
that the named object is found. Tokenizers are built from a tiny vocabulary (letters), so any
lower-case name tokenizes without a downloaded vocabulary file.
"""
from __future__ import annotations

import string
from pathlib import Path

import torch

SEED = 0


def tiny_owlv2(folder: Path) -> str:
    """OWLv2: 64 px input, 16 px patches (16 boxes per query). The box head's last layer is
    zeroed, so each box is its patch's prior box (the model's box bias): well-formed boxes
    spread over the image, with random scores."""
    from transformers import (
        CLIPTokenizer,
        Owlv2Config,
        Owlv2ForObjectDetection,
        Owlv2ImageProcessor,
        Owlv2Processor,
    )

    # OWLv2 masks out queries whose first token id is 0, so padding is id 0, start is not
    vocab = {"<|endoftext|>": 0, "<|startoftext|>": 1}
    for c in string.ascii_lowercase + string.digits + "-'":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    tok = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16)
    cfg = Owlv2Config(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=37,
                         num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=16,
                         bos_token_id=1, eos_token_id=0, pad_token_id=0),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                           num_attention_heads=4, image_size=64, patch_size=16),
        projection_dim=32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = Owlv2ForObjectDetection(cfg).eval()
    with torch.no_grad():
        model.box_head.dense2.weight.zero_()
        model.box_head.dense2.bias.zero_()
    model.save_pretrained(folder)
    Owlv2Processor(Owlv2ImageProcessor(size={"height": 64, "width": 64}), tok).save_pretrained(
        folder)
    return str(folder)


def tiny_grounding_dino(folder: Path) -> str:
    """Grounding DINO: Swin with 8 channels, BERT with 16, 10 queries."""
    from transformers import (
        BertConfig,
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *string.ascii_lowercase,
             *["##" + c for c in string.ascii_lowercase]]
    vocab = {t: i for i, t in enumerate(words)}
    tok = BertTokenizer(vocab=vocab, model_max_length=32)
    cfg = GroundingDinoConfig(
        backbone_config=SwinConfig(image_size=64, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1],
                                   num_heads=[1, 1, 1, 1], window_size=4,
                                   out_features=["stage2", "stage3", "stage4"]),
        text_config=BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=16,
                               max_position_embeddings=32),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=16, decoder_ffn_dim=16,
        encoder_attention_heads=2, decoder_attention_heads=2, num_queries=10,
        num_feature_levels=4, encoder_n_points=2, decoder_n_points=2, max_text_len=32,
        use_timm_backbone=False, use_pretrained_backbone=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = GroundingDinoForObjectDetection(cfg).eval()
    model.save_pretrained(folder)
    GroundingDinoProcessor(GroundingDinoImageProcessor(
        size={"shortest_edge": 64, "longest_edge": 128}), tok).save_pretrained(folder)
    return str(folder)


class SpyProcessor:
    """Wraps a detector's processor and records the text queries it is given."""

    def __init__(self, real):
        self.real, self.texts = real, []

    def __call__(self, **kw):
        self.texts.append(kw.get("text"))
        return self.real(**kw)

    def __getattr__(self, name):
        return getattr(self.real, name)
