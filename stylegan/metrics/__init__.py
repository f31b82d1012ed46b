"""Image-quality metrics: the field's numbers (FID, KID, precision/recall, IS, PPL) by the official protocols,
with feature networks the user supplies (`stylegan.feature_nets`), and weight-free ones (PGGAN's SWD).

`protocols` names every metric and its protocol; `compute` runs one (`compute_metric`); the math lives in one
module per metric (frechet, kernel_distance, precision_recall, inception_score, path_length, swd);
`feature_stats` and `generated` feed them. Training imports this package, never the other way round.
"""
from .compute import MetricOptions, MetricResult, RealImages, compute_metric
from .evaluation import box_downsample_u8, real_descriptors, swd_for_generator
from .feature_stats import FeatureStats, Processes
from .frechet import frechet_distance
from .generated import GeneratedImages
from .inception_score import inception_score
from .kernel_distance import kernel_distance
from .precision_recall import precision_recall
from .protocols import PROTOCOLS, Protocol, folder_protocol, parse_metric_names, protocol_for
from .swd import (DIR_REPEATS, DIRS_PER_REPEAT, MIN_RESOLUTION, NHOOD_SIZE, NHOODS_PER_IMAGE, PAPER_NUM_IMAGES, SCALE,
                  DescriptorBuilder, DescriptorSet, check_images, compute_descriptors, descriptor_bytes,
                  laplacian_pyramid, pyr_down, pyr_up, sliced_wasserstein, swd, swd_from_descriptors,
                  swd_resolutions, to_uint8_pggan)

__all__ = [
    "DIR_REPEATS", "DIRS_PER_REPEAT", "MIN_RESOLUTION", "NHOOD_SIZE", "NHOODS_PER_IMAGE", "PAPER_NUM_IMAGES",
    "PROTOCOLS", "SCALE", "DescriptorBuilder", "DescriptorSet", "FeatureStats", "GeneratedImages", "MetricOptions",
    "MetricResult", "Processes", "Protocol", "RealImages", "box_downsample_u8", "check_images", "compute_descriptors",
    "compute_metric", "descriptor_bytes", "folder_protocol", "frechet_distance", "inception_score",
    "kernel_distance", "laplacian_pyramid", "parse_metric_names", "precision_recall", "protocol_for", "pyr_down",
    "pyr_up", "real_descriptors", "sliced_wasserstein", "swd", "swd_for_generator", "swd_from_descriptors",
    "swd_resolutions", "to_uint8_pggan",
]
