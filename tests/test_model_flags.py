"""Every flag that fits images to a model either works on the loaded model or is refused
with exit 2: none is silently ignored. And `--batch-size` means the same for both
architectures: windows per model call."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHIPPED

from dae_cli.apply import pipeline
from dae_cli.cli.entry import main
from dae_cli.models.denoiser import ApplyOptions, ConvDenoiser

CAMERA = SHIPPED / "camera.png"


@pytest.mark.parametrize(
    "command, model, flag, says",
    [
        ("denoise", "photo", ["--resize"], "--resize does not apply to denoise"),
        ("denoise", "photo", ["--no-tile"], "--tile/--no-tile does not apply to denoise"),
        ("denoise", "mnist", ["--tta"], "--tta does not apply to denoise"),
        ("denoise", "mnist", ["--max-megapixels", "2"], "--max-megapixels does not apply to denoise"),
        ("denoise", "mnist", ["--sigma", "25"], "--sigma is for models that denoise by a noise level"),
        ("encode", "photo", ["--tiles"], "--tiles does not apply to encode"),
        ("encode", "photo", ["--overlap", "8"], "--overlap does not apply to encode"),
        ("encode", "photo", ["--resize"], "--resize does not apply to encode"),
    ],
)
def test_a_flag_the_model_has_no_use_for_is_a_usage_error(command, model, flag, says, tmp_path, capsys):
    out = tmp_path / ("out.npz" if command == "encode" else "out")
    code = main([command, str(CAMERA), "-m", model, "-o", str(out), *flag])
    stderr = capsys.readouterr().err
    assert code == 2, stderr
    assert says in stderr and len(stderr.strip().splitlines()) == 1
    assert not out.exists()  # refused before anything was written


def test_an_overlap_outside_a_dense_models_tile_is_a_usage_error(tmp_path, capsys):
    assert main(["denoise", str(CAMERA), "-m", "mnist", "-o", str(tmp_path / "o"), "--overlap", "28"]) == 2
    assert "--overlap must be between 0 and 27" in capsys.readouterr().err


class CountingConv(ConvDenoiser):
    """A conv model that halves its input and remembers each call's batch size."""

    def __init__(self, directory):
        super().__init__(directory, {"image_shape": [None, None, 1], "latent_dim": 4, "size_multiple": 4})
        self.calls = []

    def denoise(self, batch, levels=None):
        self.calls.append(batch.shape)
        return batch * 0.5


@pytest.mark.parametrize(
    "options, calls",
    [
        (ApplyOptions(), [1, 1, 1]),  # one image a call: the memory of one image
        (ApplyOptions(batch_size=3), [3]),  # images of one size share a call
        (ApplyOptions(batch_size=2), [2, 1]),
        (ApplyOptions(batch_size=3, max_megapixels=0.02), [2, 1]),  # 100x100 images: two fit in 0.02 MP
    ],
)
def test_batch_size_and_max_megapixels_set_a_conv_models_calls(options, calls, tmp_path):
    model = CountingConv(tmp_path)
    images = np.random.default_rng(0).random((3, 100, 100, 1), dtype=np.float32)
    works = [pipeline.Work(model.plan_denoise(image, options)) for image in images]
    finished = [
        pair
        for done in pipeline.run_plans(enumerate(works), model.denoise, model.batch_limit(options))
        for pair in done
    ]
    assert [shape[0] for shape in model.calls] == calls
    assert [index for index, _ in finished] == [0, 1, 2]  # in input order
    for image, work in zip(images, works):
        np.testing.assert_allclose(work.plan.result(), image * 0.5, atol=1e-6)


def test_images_of_other_sizes_go_through_a_conv_model_in_calls_of_their_own(tmp_path):
    model = CountingConv(tmp_path)
    images = [np.zeros((40, 60, 1), np.float32), np.zeros((60, 40, 1), np.float32), np.zeros((40, 60, 1), np.float32)]
    works = [pipeline.Work(model.plan_denoise(image, ApplyOptions())) for image in images]
    list(pipeline.run_plans(enumerate(works), model.denoise, model.batch_limit(ApplyOptions())))
    assert model.calls == [(1, 40, 60, 1), (1, 60, 40, 1), (1, 40, 60, 1)]  # one shape per call, input order kept
