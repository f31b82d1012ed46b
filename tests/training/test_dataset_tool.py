"""`stylegan dataset`: round trips, each transform on images of known content, EXIF, labels, channels, the bad
inputs of the issue, determinism; and `--data` reading the same files through the same reader."""
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from stylegan.cli import main
from stylegan.training import image_reader
from stylegan.training.dataset import ImageDataset
from stylegan.training.dataset_tool import DatasetToolError, ToolOptions, build_dataset, output_name
from stylegan.training.image_reader import Fit


def _png(path: Path, pixels: np.ndarray, mode=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode).save(path)
    return path


def _noise(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _read_dataset(dest: Path):
    """{output name: pixels} and dataset.json of a folder or zip the tool wrote."""
    if dest.suffix == ".zip":
        with zipfile.ZipFile(dest) as zf:
            files = {n: zf.read(n) for n in zf.namelist()}
    else:
        files = {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    meta = json.loads(files.pop("dataset.json"))
    return {n: np.asarray(Image.open(io.BytesIO(b))) for n, b in files.items()}, meta


def _run(tmp_path, source, dest="out.zip", **kw):
    return build_dataset(ToolOptions(source=str(source), dest=str(tmp_path / dest), resolution=kw.pop("R", 16),
                                     **kw))


def _cli(*args):
    return CliRunner().invoke(main, ["dataset", *map(str, args)])


# ----------------------------------------------------------------------------------------------------------------
# Round trip and determinism

@pytest.mark.parametrize("dest", ["out.zip", "outdir"])
def test_round_trip_is_bit_exact_with_labels(tmp_path, dest):
    src = tmp_path / "src"
    made = {}
    for i, cls in enumerate(["cat", "cat", "dog", "emu", "emu"]):
        made[f"{cls}/{i}.png"] = _png(src / cls / f"{i}.png", _noise((16, 16, 3), i))
    summary = _run(tmp_path, src, dest, fit=Fit("none"), labels="subfolders")
    images, meta = _read_dataset(tmp_path / dest)
    assert summary.written == 5 and meta["classes"] == ["cat", "dog", "emu"]
    assert [out for out, _ in meta["labels"]] == [output_name(i) for i in range(5)] == sorted(images)
    for (out, label), (name, path) in zip(meta["labels"], sorted(made.items())):
        assert np.array_equal(images[out], np.asarray(Image.open(path)))  # lossless in = out
        assert meta["classes"][label] == name.split("/")[0]
    assert summary.class_counts == [2, 1, 2]
    assert any("1 image" in w and "'dog'" in w for w in summary.warnings)  # a class with one image warns
    # the training reader takes the tool's output as it is, labels included
    ds = ImageDataset(str(tmp_path / dest), 16, cache_dir=tmp_path / "cache")
    assert ds.num_classes == 3 and list(ds.labels) == [0, 0, 1, 2, 2]
    assert np.array_equal(ds.images[2], images[output_name(2)])


def test_same_input_same_bytes_and_seeded_subset(tmp_path):
    src = tmp_path / "src"
    for i in range(6):
        _png(src / f"{i}.png", _noise((20 + i, 30, 3), i))
    a = _run(tmp_path, src, "a.zip", max_images=3, seed=5)
    _run(tmp_path, src, "b.zip", max_images=3, seed=5)
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    _run(tmp_path, src, "c", max_images=3, seed=5)
    _run(tmp_path, src, "d", max_images=3, seed=5)
    assert [p.read_bytes() for p in sorted((tmp_path / "c").rglob("*.*"))] == \
           [p.read_bytes() for p in sorted((tmp_path / "d").rglob("*.*"))]
    assert a.written == 3
    first = _run(tmp_path, src, "e.zip", max_images=3)
    assert first.written == 3 and (tmp_path / "e.zip").read_bytes() != (tmp_path / "a.zip").read_bytes()


# ----------------------------------------------------------------------------------------------------------------
# Transforms on images of known content

def _square_on_bars(w, h, side, colour=(200, 30, 60)):
    """A w x h image: a centred `side` x `side` square of `colour` on a blue background."""
    img = np.zeros((h, w, 3), np.uint8)
    img[...] = (0, 0, 255)
    top, left = (h - side) // 2, (w - side) // 2
    img[top:top + side, left:left + side] = colour
    return img


def _fit(img, R=16, channels=3, **kw):
    return image_reader.to_pixels(Image.fromarray(img), channels, R, Fit(**kw))


def test_center_crop_keeps_a_centred_square():
    out = _fit(_square_on_bars(48, 32, 32), resize_filter="box")
    assert np.array_equal(out, np.broadcast_to(np.array([200, 30, 60], np.uint8), (16, 16, 3)))
    # the crop is centred: a picture 64 wide has its 32 central columns kept (a box filter averages exactly)
    img = np.zeros((32, 64, 3), np.uint8)
    img[:, 16:48] = 255
    assert np.array_equal(_fit(img, resize_filter="box"), np.full((16, 16, 3), 255, np.uint8))


def test_letterbox_pads_with_the_colour_or_the_edge():
    img = np.full((16, 32, 3), 100, np.uint8)  # 2:1 -> 16 x 8 picture, 4 rows of padding above and below
    out = _fit(img, transform="letterbox", pad_color="#102030")
    assert np.array_equal(out[4:12], np.full((8, 16, 3), 100, np.uint8))
    assert (out[:4] == (16, 32, 48)).all() and (out[12:] == (16, 32, 48)).all()
    img[0, :] = 7    # top row -> replicated upwards
    img[-1, :] = 9   # bottom row -> downwards
    edge = _fit(img, transform="letterbox", pad_color="edge", resize_filter="box")
    assert (edge[:4] == edge[4]).all() and (edge[12:] == edge[11]).all() and edge[0, 0, 0] != edge[15, 0, 0]
    gray = _fit(np.full((32, 16), 50, np.uint8), channels=1, transform="letterbox", pad_color="white")
    assert (gray[:, :4] == 255).all() and (gray[:, 4:12] == 50).all()
    rgba = _fit(np.full((16, 32, 3), 10, np.uint8), channels=4, transform="letterbox", pad_color="#ff000000")
    assert (rgba[:4] == (255, 0, 0, 0)).all() and (rgba[4:12] == (10, 10, 10, 255)).all()


def test_stretch_none_and_wide():
    img = np.zeros((16, 64, 3), np.uint8)
    img[:, :32] = 255  # left half white: stretched to 16 x 16 the left 8 columns are white
    out = _fit(img, transform="stretch", resize_filter="box")
    assert (out[:, :8] == 255).all() and (out[:, 8:] == 0).all()
    exact = _noise((16, 16, 3))
    assert np.array_equal(_fit(exact, transform="none"), exact)
    with pytest.raises(image_reader.SkippedImage, match="not 16x16"):
        _fit(img, transform="none")
    # wide: a 64 x 48 (4:3) picture fills a 16 x 12 band, bars of 2 rows above and below
    wide = _fit(np.full((48, 64, 3), 80, np.uint8), transform="center-crop-wide")
    assert (wide[2:14] == 80).all() and (wide[:2] == 0).all() and (wide[14:] == 0).all()
    # a taller picture: the band's centre rows are kept
    tall = np.zeros((64, 64, 3), np.uint8)
    tall[8:56] = 255
    band = _fit(tall, transform="center-crop-wide", wide_height=8, resize_filter="box")  # 2:1 band: rows 16-48
    assert (band[4:12] == 255).all() and (band[:4] == 0).all()


def test_resize_filters_differ_and_box_averages():
    img = np.zeros((32, 32), np.uint8)
    img[::2] = 200
    box = _fit(img, channels=1, resize_filter="box")
    assert (box == 100).all()  # each output pixel averages one bright and one dark row
    assert not np.array_equal(box, _fit(img, channels=1, resize_filter="lanczos"))
    assert not np.array_equal(_fit(img, channels=1, resize_filter="bicubic"),
                              _fit(img, channels=1, resize_filter="lanczos"))


def test_sixteen_bit_gray_is_scaled_and_nan_pixels_are_a_wrong_mode():
    deep = Image.fromarray(np.full((4, 4), 65535, np.uint16))
    assert (np.asarray(image_reader.convert(deep, 1)) == 255).all()
    assert (np.asarray(image_reader.convert(Image.fromarray(np.full((4, 4), 128, np.uint16)), 1)) == 128).all()
    nan = Image.fromarray(np.full((4, 4), np.nan, np.float32))
    with pytest.raises(image_reader.SkippedImage, match="NaN") as e:
        image_reader.convert(nan, 3)
    assert e.value.reason == "wrong mode"


def test_exif_orientation_is_applied(tmp_path):
    img = np.zeros((16, 32, 3), np.uint8)  # 32 wide, 16 tall, left half white
    img[:, :16] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view": upright it is 16 wide and 32 tall, the white half on top
    buffer = io.BytesIO()
    Image.fromarray(img).save(buffer, format="PNG", exif=exif)
    assert image_reader.probe(buffer.getvalue())[:2] == (16, 32)
    upright = np.asarray(image_reader.load(buffer.getvalue()))
    assert upright.shape == (32, 16, 3) and (upright[:16] == 255).all() and (upright[16:] == 0).all()
    out = image_reader.read_pixels(buffer.getvalue(), 3, 16, Fit("stretch", "box"))
    assert (out[:8] == 255).all() and (out[8:] == 0).all()


# ----------------------------------------------------------------------------------------------------------------
# Channels and labels

def test_channels_auto_majority_and_alpha_over_white(tmp_path):
    src = tmp_path / "src"
    for i in range(3):
        _png(src / f"g{i}.png", np.full((16, 16), 40 * i, np.uint8), "L")
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0] = 255  # red, fully transparent: over white it is white
    _png(src / "t.png", rgba, "RGBA")
    summary = _run(tmp_path, src, "gray.zip", fit=Fit("none"))
    images, meta = _read_dataset(tmp_path / "gray.zip")
    assert summary.channels == 1 and "majority of 4" in summary.channel_note and "1 RGBA" in summary.channel_note
    assert meta == {"labels": None}
    assert images[output_name(3)].shape == (16, 16) and (images[output_name(3)] == 255).all()
    four = _run(tmp_path, src, "rgba.zip", fit=Fit("none"), channels=4)
    images, _ = _read_dataset(tmp_path / "rgba.zip")
    assert four.channels == 4 and images[output_name(0)].shape == (16, 16, 4)
    assert (images[output_name(0)][..., 3] == 255).all() and (images[output_name(3)][..., 3] == 0).all()


def test_label_files_json_and_csv(tmp_path):
    src = tmp_path / "src"
    for i in range(4):
        _png(src / f"{i}.png", _noise((16, 16, 3), i))
    (tmp_path / "l.csv").write_text("file,label\n0.png,zebra\n1.png,ant\n./2.png,zebra\n3.png,ant\n")
    s = _run(tmp_path, src, "a.zip", labels=str(tmp_path / "l.csv"))
    _, meta = _read_dataset(tmp_path / "a.zip")
    assert meta["classes"] == ["ant", "zebra"] and [k for _, k in meta["labels"]] == [1, 0, 1, 0]
    assert s.class_counts == [2, 2]
    (tmp_path / "l.json").write_text(json.dumps({"labels": [[f"{i}.png", i % 3] for i in range(4)],
                                                 "classes": ["a", "b", "c"]}))
    _run(tmp_path, src, "b.zip", labels=str(tmp_path / "l.json"))
    _, meta = _read_dataset(tmp_path / "b.zip")
    assert meta["classes"] == ["a", "b", "c"] and [k for _, k in meta["labels"]] == [0, 1, 2, 0]
    # auto: the source's own dataset.json (NVlabs format, indices only)
    (src / "dataset.json").write_text(json.dumps({"labels": [[f"{i}.png", 1 - i % 2] for i in range(4)]}))
    auto = _run(tmp_path, src, "c.zip")
    _, meta = _read_dataset(tmp_path / "c.zip")
    assert auto.label_mode == "the source's dataset.json" and meta["classes"] == ["0", "1"]
    assert _run(tmp_path, src, "d.zip", labels="none").classes is None


def test_label_file_naming_missing_images_lists_them(tmp_path):
    src = tmp_path / "src"
    _png(src / "a.png", _noise((16, 16, 3)))
    (tmp_path / "l.csv").write_text("a.png,0\nb.png,1\nc.png,1\nd.png,1\ne.png,0\n")
    with pytest.raises(DatasetToolError, match=r"names 4 image\(s\) that are not in the source, e.g. 'b.png', "
                                               r"'c.png', 'd.png', \.\.\.") as e:
        _run(tmp_path, src, labels=str(tmp_path / "l.csv"))
    assert e.value.option == "--labels"
    (tmp_path / "m.csv").write_text("x.png,0\n")
    _png(src / "x.png", _noise((16, 16, 3)))
    with pytest.raises(DatasetToolError, match=r"no label for 1 image\(s\), e.g. 'a.png'"):
        _run(tmp_path, src, labels=str(tmp_path / "m.csv"))
    with pytest.raises(DatasetToolError, match="not inside a class folder"):
        _run(tmp_path, src, labels="subfolders")


# ----------------------------------------------------------------------------------------------------------------
# Bad input

def test_no_readable_images_says_what_was_seen(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "notes.txt").write_text("x")
    res = _cli("--source", src, "--dest", tmp_path / "o.zip", "--resolution", 16)
    assert res.exit_code == 2 and "saw 1 file(s), none ending in .png" in res.output
    (src / "a.png").write_bytes(b"not a png")
    (src / "b.jpg").write_bytes(b"\xff\xd8 nor a jpeg")
    _png(src / "small.png", _noise((4, 4, 3)))
    res = _cli("--source", src, "--dest", tmp_path / "o.zip", "--resolution", 16, "--min-size", 8)
    assert res.exit_code == 2, res.output
    assert "none of the 3 image file(s)" in res.output and "2 unreadable ('a.png', 'b.jpg')" in res.output
    assert "1 too small ('small.png')" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o.zip").exists()


def test_resolution_dest_and_overwrite(tmp_path):
    src = tmp_path / "src"
    _png(src / "a.png", _noise((16, 16, 3)))
    res = _cli("--source", src, "--dest", tmp_path / "o", "--resolution", 24)
    assert res.exit_code == 2 and "--resolution" in res.output and "24 is not a power of two" in res.output
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "keep.txt").write_text("mine")
    res = _cli("--source", src, "--dest", tmp_path / "o", "--resolution", 16)
    assert res.exit_code == 2 and "exists and is not empty; pass --overwrite" in res.output
    assert (tmp_path / "o" / "keep.txt").exists()
    res = _cli("--source", src, "--dest", tmp_path / "o", "--resolution", 16, "--overwrite")
    assert res.exit_code == 0, res.output
    assert "Wrote 1 image(s) of 16x16 px" in res.output and "Labels: none" in res.output
    assert sorted(p.name for p in (tmp_path / "o").rglob("*")) == ["00000", "dataset.json", "img00000000.png"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left
    res = _cli("--source", src, "--dest", tmp_path / "p", "--resolution", 16, "--seed", 3)
    assert res.exit_code == 2 and "--seed" in res.output and "give --max-images too" in res.output
    res = _cli("--source", src, "--dest", src / "inside", "--resolution", 16)
    assert res.exit_code == 2 and "inside --source" in res.output
    res = _cli("--source", src, "--dest", tmp_path / "o", "--resolution", 16, "--pad-color", "plaid")
    assert res.exit_code == 2 and "--pad-color" in res.output and "'plaid' is not a colour" in res.output


def test_decompression_bomb_is_skipped_with_a_clear_reason(tmp_path, monkeypatch):
    src = tmp_path / "src"
    _png(src / "big.png", np.zeros((64, 64, 3), np.uint8))
    _png(src / "ok.png", _noise((16, 16, 3)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # 64 x 64 = 4096 pixels > 2 x 2000: a "bomb"
    summary = _run(tmp_path, src)
    assert summary.written == 1 and summary.skipped["too large"] == ["big.png"]
    assert "1 too large ('big.png')" in "\n".join(summary.lines())
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # between 1x and 2x: Pillow only warns; here it is refused
    assert _run(tmp_path, src, "b.zip").skipped["too large"] == ["big.png"]


def test_zip_escaping_names_and_zip_bombs_are_refused(tmp_path, monkeypatch):
    buffer = io.BytesIO()
    Image.fromarray(_noise((16, 16, 3))).save(buffer, format="PNG")
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("ok.png", buffer.getvalue())
        zf.writestr("../../escape.png", buffer.getvalue())
    res = _cli("--source", evil, "--dest", tmp_path / "o.zip", "--resolution", 16)
    assert res.exit_code == 2 and "escape the archive" in res.output and "'../../escape.png'" in res.output
    with pytest.raises(ValueError, match="escape the archive"):  # the training reader refuses it too
        ImageDataset(str(evil), 16, cache_dir=tmp_path / "cache")
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bmp", b"\0" * 200_000)
    monkeypatch.setattr(image_reader, "MAX_MEMBER_BYTES", 100_000)
    res = _cli("--source", bomb, "--dest", tmp_path / "o.zip", "--resolution", 16)
    assert res.exit_code == 2 and "'zeros.bmp' declares 200000 bytes uncompressed" in res.output


def test_glob_source_and_cli_summary(tmp_path):
    src = tmp_path / "src"
    _png(src / "a" / "x.png", _noise((20, 20, 3)))
    _png(src / "b" / "y.jpg", _noise((20, 20, 3)))
    _png(src / "b" / "z.png", _noise((8, 8, 3)))
    res = _cli("--source", f"{src}/**/*.png", "--dest", tmp_path / "o.zip", "--resolution", 16)
    assert res.exit_code == 0, res.output
    assert "Wrote 2 image(s)" in res.output and "Upscaled 1 image(s) smaller than 16 px" in res.output
