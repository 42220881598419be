"""VOID (video object + interaction deletion) on diffusers.

pipeline_void  the diffusers pipeline (pass 1 and pass 2 share it)
vae_decode     the CogVideoX VAE with the reference decode chunking
loading        base folder + strict VOID checkpoint loading, dtypes, memory modes
noise_warp     Go-with-the-Flow noise warping for pass 2
reference_prep the reference loader's preprocessing (parity mode)
engine         the `void` engine (registered in void_engine.engines.base)
"""
