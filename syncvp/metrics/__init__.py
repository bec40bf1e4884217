"""Metrics: frame metrics (SSIM, PSNR), FVD, LPIPS, depth and weather metrics."""
