"""stylegan: the style-based GAN (Karras et al. 2019) in PyTorch.

Networks numerically equal to the official NVlabs StyleGAN, fused ops with CPU/CUDA kernels, progressive
training, and safe loading of official TF pickles, rosinality checkpoints and our own format.
"""
__version__ = "0.1.0"
