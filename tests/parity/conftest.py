"""Shared fixtures of the VOID parity tests: the tiny random-weight VOID model (tiny_void)."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_void(parity_dir):
    return parity_dir / "tiny_void"


@pytest.fixture(scope="session")
def pass1_pipe(tiny_void):
    from void_engine.engines.void.pipeline_void import VOIDPipeline

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    return VOIDPipeline.from_void_checkpoint(tiny_void, 1, device="cpu", dtype="fp32")


@pytest.fixture(scope="session")
def pass2_pipe(tiny_void):
    from void_engine.engines.void.pipeline_void import VOIDPipeline

    return VOIDPipeline.from_void_checkpoint(tiny_void, 2, device="cpu", dtype="fp32")
