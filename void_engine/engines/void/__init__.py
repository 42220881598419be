"""VOID (video object + interaction deletion) on diffusers.

pipeline_void   VOIDPipeline (pass 1 and pass 2 share it), its output, from_void_checkpoint
pipeline_steps  the pipeline's diffusers-style step helpers (prompt, latents, conditioning...)
conditioning    mask levels, noise augmentation, temporal multidiffusion windows
vae_decode      the CogVideoX VAE with the reference decode chunking
loading         base folder + strict VOID checkpoint loading, dtypes, memory modes, compile
lora            LoRA adapters fused into the transformer (diffusers' PEFT integration)
settings        the engine's options, validated; model size and frame rules without weights
noise_warp      Go-with-the-Flow noise warping for pass 2
reference_prep  the reference loader's preprocessing (parity mode)
profiling       where a run spends its time (benchmarks)
engine          the `void` engine (registered in void_engine.engines.base)
"""
