"""stylegan: the style-based GAN (Karras et al. 2019) in PyTorch.

Networks numerically equal to the official NVlabs StyleGAN, fused ops with CPU/CUDA kernels, progressive
training, and safe loading of official TF pickles, rosinality checkpoints and our own format.
"""
__version__ = "0.1.0"

_LAZY_EXPORTS = {  # imported on first use, so `import stylegan` (and the CLI) stays light
    "Generator": "stylegan.generator", "Discriminator": "stylegan.discriminator",
    "GeneratorConfig": "stylegan.config", "DiscriminatorConfig": "stylegan.config",
    "load": "stylegan.loading", "save": "stylegan.loading", "Networks": "stylegan.loading",
    "UnsafePickleError": "stylegan.formats.safe_pickle",
    "project": "stylegan.projection.projector", "Projection": "stylegan.projection.projector",
    "train_encoder": "stylegan.projection.encoder_training", "load_encoder": "stylegan.projection.encoder",
}
__all__ = sorted(_LAZY_EXPORTS)


_LAZY_SUBMODULES = ("generate", "ops", "training", "formats", "loading", "projection", "directions", "edit")  # `stylegan.generate.z_from_seed(...)`


def __getattr__(name):
    import importlib

    if name in _LAZY_EXPORTS:
        return getattr(importlib.import_module(_LAZY_EXPORTS[name]), name)
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"stylegan.{name}")
    raise AttributeError(f"module 'stylegan' has no attribute {name!r}")
