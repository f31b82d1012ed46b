"""Installs the `stylegan` package: one import namespace built from the card's top-level folders.

`ops/`, `training/` and `cuda/` are installed as `stylegan.ops`, `stylegan.training` and `stylegan.cuda`, so no
generic top-level `ops` or `training` module lands in site-packages. Kernel sources ship as package data and are
JIT-compiled on first use (see ops/build.py).
"""
from setuptools import find_packages, setup

# Subpackages of stylegan/ are found, so a new one cannot be left out of a wheel; the card's other folders are
# mapped under the stylegan namespace.
MAPPED_FOLDERS = {"stylegan.ops": "ops", "stylegan.training": "training", "stylegan.cuda": "cuda"}
PACKAGES = ["stylegan"] + ["stylegan." + name for name in find_packages("stylegan")] + list(MAPPED_FOLDERS)
PACKAGE_DIRS = {"stylegan": "stylegan", **MAPPED_FOLDERS}
# `stylegan serve` (pip install "stylegan[serve]"): the web framework, its server and multipart uploads; the core
# package stays free of them.
SERVE_REQUIRES = ["fastapi", "uvicorn", "python-multipart"]

setup(
    name="stylegan",
    version="0.1.0",
    description="Style-based GAN (StyleGAN v1) in PyTorch: fused ops, networks equal to the official ones, "
    "progressive training, safe loading of official and rosinality weights.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=PACKAGES,
    package_dir=PACKAGE_DIRS,
    package_data={"stylegan.cuda": ["*.h", "*.cuh", "*.cpp", "*.cu"], "stylegan.metrics": ["weights/*.pt"],
                  "stylegan.serve": ["static/*"]},
    install_requires=["torch>=2.1", "ninja", "numpy", "pillow", "click>=8", "tqdm"],
    extras_require={"test": ["pytest", "scipy", *SERVE_REQUIRES, "httpx2", "playwright"], "serve": SERVE_REQUIRES,
                    "tensorboard": ["tensorboard"]},
    entry_points={"console_scripts": ["stylegan = stylegan.cli:main"]},
)
