"""Images of any size: overlapping tiles blended without seams."""

import numpy as np
import pytest
from conftest import SAMPLE, run_dae
from PIL import Image

from dae_cli.models.windows import LATTICE, Tiling


def plan_tiles(pixels, tile, overlap=None):
    """A dense model's tiles, `overlap` half a tile unless given, as `dae denoise` plans them."""
    return Tiling.tiled(pixels, tile, min(tile) // 2 if overlap is None else overlap, LATTICE)


def assemble(plan, outputs):
    for index, output in enumerate(outputs):
        plan.put(index, output)
    return plan.result()


@pytest.mark.parametrize("size", [(28, 28), (29, 61), (280, 280), (5, 90), (1, 1)])
@pytest.mark.parametrize("overlap", [None, 0, 7, 27])
def test_tiles_cover_the_image_and_blend_back_exactly(size, overlap):
    pixels = np.random.default_rng(0).random((*size, 2), dtype=np.float32)
    plan = plan_tiles(pixels, (28, 28), overlap)
    assert plan.windows().shape[1:] == (28, 28, 2)
    np.testing.assert_allclose(assemble(plan, plan.windows()), pixels, atol=1e-5)  # identity model


def window_means(tiles):
    """A model far from the identity: every window becomes its own mean."""
    return np.broadcast_to(tiles.mean(axis=(1, 2, 3), keepdims=True), tiles.shape)


def test_a_grid_of_cells_is_blended_from_the_windows_that_see_whole_cells():
    # Windows on the tile lattice each see one whole cell and answer its value; the
    # windows between see parts of four and answer a mix. The blend must favour the
    # former: with equal weights the cell centres would be off by up to 0.2.
    values = np.random.default_rng(0).random((4, 4))
    cells = np.kron(values, np.ones((28, 28)))
    plan = plan_tiles(cells[..., None].astype(np.float32), (28, 28))
    blended = assemble(plan, window_means(plan.windows()))[..., 0]
    np.testing.assert_allclose(blended[14::28, 14::28], values, atol=0.01)
    assert np.abs(blended - cells).mean() < 0.05
    # Every pixel is a weighted mean of the windows over it: within their range.
    lowest, highest = np.full(cells.shape, np.inf), np.full(cells.shape, -np.inf)
    for (y, x), output in zip(plan.corners, window_means(plan.windows())):
        window = (slice(y, y + 28), slice(x, x + 28))
        lowest[window] = np.minimum(lowest[window], output[..., 0])
        highest[window] = np.maximum(highest[window], output[..., 0])
    assert np.all(blended >= lowest - 1e-6) and np.all(blended <= highest + 1e-6)


def psnr(clean, other):
    return 10 * np.log10(1.0 / np.mean((clean - other) ** 2))


def test_a_large_image_of_digits_denoises_like_the_digits_one_by_one(trained_model, tmp_path):
    with np.load(SAMPLE) as archive:
        clean = archive["x_test"][100:200].astype(np.float32) / 255.0
    noisy = np.clip(clean + np.random.default_rng(3).normal(0.5, 0.5, clean.shape), 0, 1)
    noisy = np.rint(noisy * 255).astype(np.uint8)
    grid = lambda digits: digits.reshape(10, 10, 28, 28).transpose(0, 2, 1, 3).reshape(280, 280)  # noqa: E731
    folder = tmp_path / "digits"
    folder.mkdir()
    for i, digit in enumerate(noisy):
        Image.fromarray(digit).save(folder / f"{i:03d}.png")
    Image.fromarray(grid(noisy)).save(tmp_path / "page.png")

    one_by_one = run_dae("denoise", folder, "-m", trained_model, "-o", tmp_path / "single")
    tiled = run_dae("denoise", tmp_path / "page.png", "-m", trained_model)
    assert one_by_one.returncode == 0 and tiled.returncode == 0, tiled.stderr
    singles = np.stack([np.asarray(Image.open(p), np.float32) / 255 for p in one_by_one.stdout.split()])
    page = np.asarray(Image.open(tiled.stdout.strip()), np.float32) / 255
    assert page.shape == (280, 280)
    clean_page = grid(clean)
    assert abs(psnr(clean_page, page) - psnr(clean_page, grid(singles))) < 0.5

    # No seams: the error where windows meet is not higher than inside them.
    error = (page - clean_page) ** 2
    seam = np.zeros((280, 280), bool)
    edges = [i for i in range(280) if i % 14 in (0, 13)]  # windows start every 14 pixels
    seam[edges, :] = True
    seam[:, edges] = True
    assert error[seam].mean() <= error[~seam].mean()


def test_resize_and_no_tile_options(trained_model, tmp_path):
    image = tmp_path / "wide.png"
    Image.new("L", (56, 28), 80).save(image)
    resized = run_dae("denoise", image, "-m", trained_model, "--resize", "-o", tmp_path / "r.png")
    assert resized.returncode == 0 and Image.open(tmp_path / "r.png").size == (56, 28)
    refused = run_dae("denoise", image, "-m", trained_model, "--no-tile")
    assert refused.returncode == 1 and "image is 28x56, the model takes 28x28" in refused.stderr
