"""Projection (GAN inversion): real images -> latents ws (+ noise maps) -> the same images.

config (ProjectionConfig), schedule (lr ramp, w noise), noise_regularization, losses (LPIPS / pixel / auto),
targets (image files -> uint8 targets), projector (`project`, `render`), encoder (image -> W+, the learned start
of `--init encoder`) and encoder_training (`train_encoder`).
"""
from .encoder import Encoder, EncoderConfig, EncoderFile, EncoderFileError, load_encoder, save_encoder
from .encoder_training import EncoderTrainConfig, train_encoder
from .config import ProjectionConfig
from .losses import LpipsLoss, PixelLoss, make_loss
from .projector import Projection, encoder_start, project, render, w_statistics
from .targets import TargetImageError, load_target

__all__ = ["ProjectionConfig", "LpipsLoss", "PixelLoss", "make_loss", "Projection", "project", "render",
           "w_statistics", "TargetImageError", "load_target", "Encoder", "EncoderConfig", "EncoderFile", "EncoderFileError",
           "load_encoder", "save_encoder", "EncoderTrainConfig", "train_encoder", "encoder_start"]
