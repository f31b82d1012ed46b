"""Directions (SeFa, GANSpace, labels) against numpy's eigh / PCA / the logistic optimality conditions, and edits:
only the chosen layers move, strength 0 is the unedited image exactly."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from stylegan.directions import (DirectionsError, check_directions_for, compute_directions, load_directions,
                                 logistic_direction, pca_directions, read_samples, sample_w, save_directions,
                                 sefa_directions)
from stylegan.edit import edit_images, edit_strip, edit_ws
from stylegan.generate import layer_range
from stylegan.projection import render
from stylegan.ws_file import generator_digest

from projection_support import small_generator


@pytest.fixture(scope="module")
def G():
    return small_generator()


def _same_up_to_sign(a: np.ndarray, b: np.ndarray, atol: float) -> bool:
    return all(np.allclose(x, y, atol=atol) or np.allclose(x, -y, atol=atol) for x, y in zip(a, b))


def test_sefa_is_eigh_of_the_normalised_stacked_style_weights(G):
    layers = list(layer_range("coarse", G.num_layers))
    vectors, values = sefa_directions(G, layers)
    stacked = np.concatenate([(G.synthesis.layers[i].style.weight * G.synthesis.layers[i].style.weight_gain)
                              .detach().double().numpy() for i in layers])
    stacked /= np.linalg.norm(stacked, axis=1, keepdims=True)
    ref_values, ref_vectors = np.linalg.eigh(stacked.T @ stacked)
    assert np.allclose(values, ref_values[::-1], rtol=1e-10)
    assert _same_up_to_sign(vectors[:4], ref_vectors[:, ::-1].T[:4], atol=1e-8)  # distinct top eigenvalues
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1)


def test_ganspace_is_numpy_pca(G):
    w = sample_w(G, 500, seed=3)
    vectors, variances = pca_directions(w)
    centred = w - w.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    assert np.allclose(variances, s ** 2 / (len(w) - 1), rtol=1e-8)
    assert _same_up_to_sign(vectors[:4], vt[:4], atol=1e-6)
    z = np.random.RandomState(3).randn(500, G.config.latent_size)
    assert np.allclose(w[:3], G.mapping(torch.from_numpy(z[:3]).float())[:, 0].double().detach().numpy(), atol=1e-6)


def test_logistic_direction_recovers_a_planted_direction_and_is_optimal():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(2000, 8))
    truth = np.zeros(8)
    truth[[1, 5]] = [3.0, -4.0]
    labels = (w @ truth + 0.5 * rng.normal(size=2000) > 0).astype(int)
    normal, accuracy = logistic_direction(w, labels, l2=1e-3)
    assert np.dot(normal, truth / np.linalg.norm(truth)) > 0.99 and accuracy > 0.9
    with pytest.raises(ValueError, match="both classes"):
        logistic_direction(w, np.zeros(2000))


def test_directions_file_round_trip_and_the_network_check(G, tmp_path):
    digest = generator_digest(G)
    d = compute_directions(G, "ganspace", list(range(G.num_layers)), num=5, num_samples=300, G_sha256=digest)
    assert d.vectors.shape == (5, G.config.dlatent_size) and np.allclose(d.sigmas, np.sqrt(d.values), rtol=1e-6)
    save_directions(tmp_path / "d.npz", d)
    back = load_directions(tmp_path / "d.npz")
    assert np.array_equal(back.vectors, d.vectors) and back.layers == d.layers and back.method == "ganspace"
    check_directions_for(back, G, digest, "d.npz", "G")
    other = small_generator(seed=5)
    with pytest.raises(DirectionsError, match="made for another network"):
        check_directions_for(back, other, generator_digest(other), "d.npz", "other.pt")
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(DirectionsError, match="not a directions"):
        load_directions(tmp_path / "bad.npz")
    np.savez(tmp_path / "samples.npz", ws=np.zeros((4, G.num_layers, 16)), labels=np.array([0, 1, 0, 1]))
    w, labels = read_samples(tmp_path / "samples.npz")
    assert w.shape == (4, 16) and labels.tolist() == [0, 1, 0, 1]


def test_layer_restricted_edit_keeps_other_layers_and_strength_zero_is_exact(G):
    ws = G.mapping(torch.randn(2, G.config.latent_size)).detach()
    direction = torch.randn(G.config.dlatent_size)
    layers = list(layer_range("coarse", G.num_layers))
    edited = edit_ws(ws, direction, 2.5, layers)
    others = [i for i in range(G.num_layers) if i not in layers]
    assert torch.equal(edited[:, others], ws[:, others])
    assert torch.allclose(edited[:, layers], ws[:, layers] + 2.5 * direction)
    assert torch.equal(edit_ws(ws, direction, 0.0, layers), ws)
    images = edit_images(G, ws, direction, [-1.0, 0.0, 1.0], layers)
    assert np.array_equal(images[1], render(G, ws))
    assert not np.array_equal(images[0], images[1])
    strip = edit_strip(images)
    assert strip.shape == (2 * 16, 3 * 16, 3)
