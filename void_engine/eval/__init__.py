"""Measured removal quality against ground truth.

generator  counterfactual clip sets (each scene rendered with and without the object)
scene      the renderer behind it (numpy + OpenCV)
metrics    PSNR/SSIM per region and temporal consistency, streamed over frames
runner     run an engine over a set through the library's stages, or score results on disk
report     the Parquet table and the HTML page with plots
gate_calibration  the morphing gate's threshold measured on generated pass-1 results
"""
