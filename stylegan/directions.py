"""Editing directions in W: SeFa (closed form from the weights), GANSpace (PCA of sampled w), or a linear direction
fitted to labelled latents (InterFaceGAN-style), and the file `stylegan directions` writes for `stylegan edit`.

- SeFa (Shen & Zhou 2021, genforce/sefa `factorize_weight`): stack the style-affine weights [2C, D] of the chosen
  layers, normalise every output unit's weight vector to unit length, and take the eigenvectors of A^T A by
  descending eigenvalue. No data, no training.
- GANSpace (Härkönen et al. 2020): principal components of w = mapping(z) over `num_samples` latents, by
  descending variance.
- labels: L2-regularised logistic regression of binary labels on w (Newton's method, float64); the direction is the
  unit normal of the separating hyperplane, pointing towards label 1.
Every direction is a unit vector; `sigmas` holds the standard deviation of sampled w along it, the unit of
`stylegan edit --strengths`, so strength 1 is one typical spread of the network's latents for every method.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

import numpy as np
import torch

from .atomic_write import atomic_write_bytes
from .generate import labels_for, model_device

METHODS = ("sefa", "ganspace", "labels")
DEFAULT_SAMPLES = 10000
SAMPLES_SEED = 0
LOGISTIC_L2 = 1e-3       # ridge on the weights (not the bias): finite weights on separable data
NEWTON_ITERATIONS = 50
MAPPING_BATCH = 1000


class DirectionsError(ValueError):
    """A directions or samples file is unreadable, or made for another network."""


@dataclass
class Directions:
    """vectors [K, D] unit rows; values [K] (eigenvalues, variances, or training accuracy for labels); sigmas [K];
    layers: the layers the directions were computed for (the default layers of an edit)."""

    vectors: np.ndarray
    values: np.ndarray
    sigmas: np.ndarray
    method: str
    layers: List[int]
    G_sha256: str = ""
    num_layers: int = 0

    @property
    def count(self) -> int:
        return int(self.vectors.shape[0])


def _descending_eigh(matrix: np.ndarray):
    """(eigenvectors as rows, eigenvalues), by descending eigenvalue, of a symmetric matrix."""
    values, vectors = np.linalg.eigh(matrix)
    order = np.argsort(values)[::-1]
    return vectors[:, order].T, values[order]


def sefa_directions(G: torch.nn.Module, layers: Sequence[int]) -> tuple:
    """(vectors [D, D] by descending eigenvalue, eigenvalues [D]) of the normalised stacked style weights."""
    blocks = []
    for i in layers:
        style = G.synthesis.layers[i].style
        if style is None:
            raise ValueError("the network has no style layers (use_styles=False): SeFa needs them")
        blocks.append(style.scaled_weight().detach().double().cpu().numpy())
    stacked = np.concatenate(blocks, axis=0)
    stacked = stacked / np.linalg.norm(stacked, axis=1, keepdims=True)
    return _descending_eigh(stacked.T @ stacked)


@torch.no_grad()
def sample_w(G: torch.nn.Module, num_samples: int, seed: int = SAMPLES_SEED,
             class_idx: Optional[int] = None) -> np.ndarray:
    """w [num_samples, D] float64 of RandomState(seed) latents; a conditional network gets class_idx, or random
    classes (from the same RandomState) when class_idx is None."""
    rng = np.random.RandomState(seed)
    z = rng.randn(num_samples, int(G.config.latent_size))
    label_size = int(G.config.label_size)
    classes = None
    if label_size and class_idx is None:
        classes = rng.randint(0, label_size, size=num_samples)
    out = []
    device = model_device(G)
    for start in range(0, num_samples, MAPPING_BATCH):
        chunk = torch.from_numpy(z[start:start + MAPPING_BATCH]).float().to(device)
        if classes is not None:
            c = torch.zeros(chunk.shape[0], label_size, device=device)
            c[torch.arange(chunk.shape[0]), torch.from_numpy(classes[start:start + MAPPING_BATCH]).to(device)] = 1
        else:
            c = labels_for(G, class_idx, chunk.shape[0])
        out.append(G.mapping(chunk, c)[:, 0].double().cpu().numpy())
    return np.concatenate(out)


def pca_directions(w: np.ndarray) -> tuple:
    """(components [D, D] by descending variance, variances [D]) of samples w [N, D] (covariance with N - 1)."""
    centred = w - w.mean(axis=0, keepdims=True)
    return _descending_eigh(centred.T @ centred / (w.shape[0] - 1))


def logistic_direction(w: np.ndarray, labels: np.ndarray, l2: float = LOGISTIC_L2) -> tuple:
    """(unit normal [D] towards label 1, training accuracy) of an L2-regularised logistic regression of
    labels in {0, 1} on w [N, D]; Newton's method on (weights, bias)."""
    labels = np.asarray(labels)
    values = set(np.unique(labels).tolist())
    if not values <= {0, 1} or len(values) < 2:
        raise ValueError(f"labels hold {sorted(values)[:5]}: expected both classes 0 and 1")
    x = np.concatenate([w, np.ones((w.shape[0], 1))], axis=1)
    y = labels.astype(np.float64)
    ridge = np.full(x.shape[1], l2 * w.shape[0])
    ridge[-1] = 0.0
    beta = np.zeros(x.shape[1])
    for _ in range(NEWTON_ITERATIONS):
        p = 1.0 / (1.0 + np.exp(-(x @ beta)))
        grad = x.T @ (p - y) + ridge * beta
        hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(ridge) + 1e-12 * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    normal = beta[:-1]
    accuracy = float(((x @ beta > 0) == (y > 0.5)).mean())
    return normal / np.linalg.norm(normal), accuracy


def read_samples(path: Union[str, os.PathLike]) -> tuple:
    """(w [N, D], labels [N]) of a samples .npz: `w` [N, D] or `ws` [N, L, D] (averaged over layers), `labels`."""
    try:
        with np.load(os.fspath(path), allow_pickle=False) as data:
            if "labels" not in data.files or ("w" not in data.files and "ws" not in data.files):
                raise DirectionsError(f"{path} holds {', '.join(data.files) or 'nothing'}: expected 'labels' [N] "
                                      f"and 'w' [N, D] or 'ws' [N, L, D]")
            w = np.array(data["w"] if "w" in data.files else data["ws"], dtype=np.float64)
            labels = np.array(data["labels"])
    except DirectionsError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise DirectionsError(f"{path} is not a samples .npz file ({type(exc).__name__}: {exc})") from None
    if w.ndim == 3:
        w = w.mean(axis=1)
    if w.ndim != 2 or labels.shape != (w.shape[0],):
        raise DirectionsError(f"{path}: w {list(w.shape)} and labels {list(labels.shape)}: expected [N, D] and [N]")
    return w, labels


def compute_directions(G: torch.nn.Module, method: str, layers: Sequence[int], num: int = 20,
                       num_samples: int = DEFAULT_SAMPLES, class_idx: Optional[int] = None,
                       samples: Optional[tuple] = None, G_sha256: str = "") -> Directions:
    """The top `num` directions of `method` (labels: the one fitted direction, `samples` = (w, labels))."""
    if method not in METHODS:
        raise ValueError(f"method={method!r} is invalid: expected one of {', '.join(METHODS)}")
    w = sample_w(G, num_samples, class_idx=class_idx)
    if method == "sefa":
        vectors, values = sefa_directions(G, layers)
    elif method == "ganspace":
        vectors, values = pca_directions(w)
    else:
        if samples is None:
            raise ValueError("method 'labels' needs samples = (w [N, D], labels [N])")
        sample_w_, labels = samples
        if sample_w_.shape[1] != int(G.config.dlatent_size):
            raise ValueError(f"the samples' w have {sample_w_.shape[1]} dimensions: the network's w have "
                             f"{G.config.dlatent_size}")
        vector, accuracy = logistic_direction(sample_w_, labels)
        vectors, values = vector[None], np.array([accuracy])
    vectors, values = vectors[:num], values[:num]
    sigmas = (w - w.mean(axis=0)) @ vectors.T
    sigmas = sigmas.std(axis=0, ddof=1)
    return Directions(vectors.astype(np.float64), values.astype(np.float64), sigmas, method, list(layers),
                      G_sha256, int(G.num_layers))


def save_directions(path: Union[str, os.PathLike], d: Directions) -> None:
    """Writes a directions .npz atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, directions=d.vectors, values=d.values, sigmas=d.sigmas, method=np.array(d.method),
             layers=np.array(d.layers, dtype=np.int64), G_sha256=np.array(d.G_sha256),
             num_layers=np.array(d.num_layers), meta=np.array(json.dumps({"method": d.method})))
    atomic_write_bytes(path, buffer.getvalue())


def load_directions(path: Union[str, os.PathLike]) -> Directions:
    """Reads a directions .npz; DirectionsError when it is not one."""
    keys = ("directions", "values", "sigmas", "method", "layers", "G_sha256", "num_layers")
    try:
        with np.load(os.fspath(path), allow_pickle=False) as data:
            missing = [k for k in keys if k not in data.files]
            if missing:
                raise DirectionsError(f"{path} lacks {', '.join(missing)}: expected a file of stylegan directions")
            d = Directions(np.array(data["directions"], dtype=np.float64), np.array(data["values"]),
                           np.array(data["sigmas"], dtype=np.float64), str(data["method"][()]),
                           [int(i) for i in data["layers"]], str(data["G_sha256"][()]), int(data["num_layers"]))
    except DirectionsError:
        raise
    except FileNotFoundError:
        raise DirectionsError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError) as exc:
        raise DirectionsError(f"{path} is not a directions .npz file ({type(exc).__name__}: {exc})") from None
    if d.vectors.ndim != 2 or d.sigmas.shape != (d.vectors.shape[0],) or not np.isfinite(d.vectors).all():
        raise DirectionsError(f"{path}: directions {list(d.vectors.shape)}, sigmas {list(d.sigmas.shape)}: expected "
                              f"finite [K, D] and [K]")
    return d


def check_directions_for(d: Directions, G: torch.nn.Module, G_sha256: str, path: str, network: str) -> None:
    """DirectionsError unless `d` was made for G (dimension, layer count, weight digest when recorded)."""
    if d.vectors.shape[1] != int(G.config.dlatent_size) or d.num_layers != int(G.num_layers) or \
            (d.G_sha256 and d.G_sha256 != G_sha256):
        raise DirectionsError(f"{path} was made for another network (w size {d.vectors.shape[1]}, {d.num_layers} "
                              f"layers, weights sha256 {d.G_sha256[:12] or 'unknown'}) than {network} (w size "
                              f"{G.config.dlatent_size}, {G.num_layers} layers, weights sha256 {G_sha256[:12]})")


__all__ = ["Directions", "DirectionsError", "METHODS", "compute_directions", "sefa_directions", "pca_directions",
           "logistic_direction", "sample_w", "read_samples", "save_directions", "load_directions",
           "check_directions_for"]
