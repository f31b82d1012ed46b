"""The projection encoder (image -> W+): its file, its refusals, and what it is for: on a small trained network's
own images it starts the projection closer than w_avg, and the projection from it is not worse after the same
steps. tests/data/tiny_glyphs16.pt is that network (made by tests/data/make_tiny_glyphs16.sh with this package)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import stylegan
from stylegan.image_similarity import psnr
from stylegan.projection import (EncoderConfig, EncoderFileError, EncoderTrainConfig, ProjectionConfig,
                                 encoder_start, load_encoder, project, render, save_encoder, train_encoder,
                                 w_statistics)
from stylegan.projection.encoder import check_encoder_for
from stylegan.projection.encoder_training import sample_ws_and_images
from stylegan.ws_file import generator_digest

from network_test_support import DATA
from projection_support import small_generator

TINY_TRAINED = DATA / "tiny_glyphs16.pt"
pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(autouse=True)
def _reference_ops(monkeypatch):
    monkeypatch.setenv("STYLEGAN_OPS", "ref")


@pytest.fixture(scope="module")
def trained():
    """The tiny trained network and an encoder trained for it on 6 kimg of its samples."""
    G = stylegan.load(TINY_TRAINED).generator.eval()
    enc_file = train_encoder(G, EncoderTrainConfig(total_kimg=6, batch=32, lrate=0.002, w_stat_samples=2000),
                             generator_digest(G), progress=False)
    return G, enc_file


def _own_images(G, count: int, seed: int) -> torch.Tensor:
    """uint8 [count, C, R, R]: G's psi-1 samples with its stored noise (unseen latents: another seed)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        ws = G.mapping(torch.randn(count, G.config.latent_size, generator=g), None)
    return torch.from_numpy(render(G, ws)).permute(0, 3, 1, 2).contiguous()


def test_encoder_starts_closer_than_w_avg_and_the_projection_is_not_worse(trained):
    G, enc_file = trained
    targets = _own_images(G, 4, seed=12345)
    w_avg, _ = w_statistics(G, 2000)
    start_avg = torch.from_numpy(render(G, w_avg.view(1, 1, -1).expand(4, G.num_layers, -1))).permute(0, 3, 1, 2)
    start_enc = torch.from_numpy(render(G, encoder_start(enc_file.encoder, targets))).permute(0, 3, 1, 2)
    psnr_avg = psnr(start_avg.float(), targets.float())
    psnr_enc = psnr(start_enc.float(), targets.float())
    assert psnr_enc.mean() > psnr_avg.mean() + 2, (psnr_avg, psnr_enc)
    cfg = ProjectionConfig(space="wplus", num_steps=60, w_avg_samples=2000)
    from_avg = project(G, targets, cfg, progress=False)
    from_enc = project(G, targets, cfg, progress=False, encoder=enc_file.encoder)
    assert np.mean(from_enc.psnr) >= np.mean(from_avg.psnr), (from_avg.psnr, from_enc.psnr)
    first = torch.tensor(from_enc.log[0]["psnr"])  # step 1 renders the encoder's start (+ the early w noise)
    assert (first > psnr_avg + 1).float().mean() >= 0.5, (first, psnr_avg)


def test_training_lowers_the_ws_loss_and_is_deterministic():
    G = small_generator(label_size=3)
    cfg = EncoderTrainConfig(total_kimg=1.0, batch=16, w_stat_samples=500)
    a = train_encoder(G, cfg, "x", progress=False)
    b = train_encoder(G, cfg, "x", progress=False)
    for (k, va), vb in zip(a.encoder.state_dict().items(), b.encoder.state_dict().values()):
        assert torch.equal(va, vb), k
    assert a.log[-1]["ws_loss"] < a.log[0]["ws_loss"], a.log
    assert all(p.requires_grad for p in G.parameters())  # G's flags restored


def test_samples_are_style_mixed_and_normalised_space_is_per_dimension():
    G = small_generator()
    ws, labels, images = sample_ws_and_images(G, 64, 1.0, torch.Generator().manual_seed(0))
    assert labels is None and images.shape == (64, 3, 16, 16)
    differs = (ws[:, 1:] != ws[:, :1]).any(dim=2).any(dim=1)
    assert differs.all()  # mixing probability 1: every sample has a second latent from some layer on
    ws0, _, _ = sample_ws_and_images(G, 64, 0.0, torch.Generator().manual_seed(0))
    assert torch.equal(ws0, ws0[:, :1].expand_as(ws0))  # no mixing: one w for every layer
    enc = train_encoder(G, EncoderTrainConfig(total_kimg=0.016, batch=16, w_stat_samples=4000), "x",
                        progress=False).encoder
    w = G.mapping(torch.randn(4000, 16), None)[:, 0]
    normalised = enc.normalize(w.detach())
    assert torch.allclose(normalised.mean(0), torch.zeros(16), atol=0.1)
    assert torch.allclose(normalised.std(0), torch.ones(16), atol=0.1)
    assert torch.allclose(enc(images) , enc.forward_normalized(images) * enc.w_std + enc.w_mean)


def test_encoder_file_round_trip_and_refusals(tmp_path):
    G = small_generator(label_size=3)
    digest = generator_digest(G)
    enc_file = train_encoder(G, EncoderTrainConfig(total_kimg=0.032, batch=16, w_stat_samples=200), digest,
                             "f" * 64, progress=False)
    save_encoder(tmp_path / "e.pt", enc_file)
    back = load_encoder(tmp_path / "e.pt")
    x = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
    assert torch.equal(encoder_start(back.encoder, x, 2), encoder_start(enc_file.encoder, x, 2))
    assert back.G_sha256 == digest and back.network_sha256 == "f" * 64 and back.train_config["batch"] == 16
    check_encoder_for(back, G, digest, "e.pt", "net.pt")
    other = small_generator(seed=5, label_size=3)
    with pytest.raises(EncoderFileError, match=f"trained for another network .*{digest[:12]}.*"
                                               f"{generator_digest(other)[:12]}"):
        check_encoder_for(back, other, generator_digest(other), "e.pt", "other.pt")
    with pytest.raises(ValueError, match="label-conditional"):
        encoder_start(back.encoder, x)
    with pytest.raises(ValueError, match="encoder was built for"):
        project(small_generator(), x, ProjectionConfig(num_steps=1, w_avg_samples=10), encoder=back.encoder,
                progress=False)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(EncoderFileError, match="not an encoder file"):
        load_encoder(tmp_path / "junk.pt")
    torch.save({"G": 1}, tmp_path / "dict.pt")
    with pytest.raises(EncoderFileError, match="no kind="):
        load_encoder(tmp_path / "dict.pt")
    with pytest.raises(EncoderFileError, match="no such file"):
        load_encoder(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="resolution=12"):
        EncoderConfig(12, 3, 6, 16, 0, 64, 16)
    with pytest.raises(ValueError, match="total_kimg"):
        EncoderTrainConfig(total_kimg=0)


def test_one_class_per_target_starts_each_at_its_class_w_avg():
    """Step 0's learning rate is 0 (the ramp-up), so one step leaves ws at the start."""
    G = small_generator(label_size=3)
    x = torch.zeros(3, 3, 16, 16, dtype=torch.uint8)
    p = project(G, x, ProjectionConfig(num_steps=1, w_avg_samples=100), class_idx=[2, 0, 2], progress=False)
    for i, c in enumerate([2, 0, 2]):
        w_avg, w_std = w_statistics(G, 100, class_idx=c)
        assert torch.equal(p.ws[i], w_avg.expand(G.num_layers, -1)) and p.w_std[i] == w_std
    with pytest.raises(ValueError, match="2 entries for 3 targets"):
        project(G, x, ProjectionConfig(num_steps=1, w_avg_samples=100), class_idx=[0, 1], progress=False)
