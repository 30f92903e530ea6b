"""DPTL: Grad-CAM of a source model on target frames, threshold + SSIM, the frames, the pipeline."""
