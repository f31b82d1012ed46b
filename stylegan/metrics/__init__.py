"""Image-quality metrics (today: PGGAN's multi-scale sliced Wasserstein distance, SWD).

`swd` holds the protocol's math on image tensors; `evaluation` makes the two image sets from a generator and a
dataset. Training imports this package, never the other way round.
"""
from .evaluation import box_downsample_u8, real_descriptors, swd_for_generator
from .swd import (DIR_REPEATS, DIRS_PER_REPEAT, MIN_RESOLUTION, NHOOD_SIZE, NHOODS_PER_IMAGE, PAPER_NUM_IMAGES, SCALE,
                  DescriptorBuilder, DescriptorSet, check_images, compute_descriptors, descriptor_bytes,
                  laplacian_pyramid, pyr_down, pyr_up, sliced_wasserstein, swd, swd_from_descriptors,
                  swd_resolutions, to_uint8_pggan)

__all__ = [
    "DIR_REPEATS", "DIRS_PER_REPEAT", "MIN_RESOLUTION", "NHOOD_SIZE", "NHOODS_PER_IMAGE", "PAPER_NUM_IMAGES", "SCALE",
    "DescriptorBuilder", "DescriptorSet", "box_downsample_u8", "check_images", "compute_descriptors",
    "descriptor_bytes", "laplacian_pyramid", "pyr_down", "pyr_up", "real_descriptors", "sliced_wasserstein", "swd",
    "swd_for_generator", "swd_from_descriptors", "swd_resolutions", "to_uint8_pggan",
]
