"""Noise models: statistics, clipping and seeding."""

import numpy as np
import pytest

from dae_cli.noise import NoiseSpec, add_noise


def draw(spec, value=0.5, seed=(1, 2), shape=(200, 28, 28, 1)):
    return add_noise(np.full(shape, value, np.float32), np.array(seed), spec).numpy()


def test_gaussian_has_the_configured_mean_and_std():
    noisy = draw(NoiseSpec("gaussian", mean=0.1, std=0.05), value=0.3)
    assert abs(noisy.mean() - 0.4) < 0.002
    assert abs(noisy.std() - 0.05) < 0.002


def test_reference_noise_is_clipped_to_the_unit_interval():
    noisy = draw(NoiseSpec("gaussian", mean=0.5, std=0.5), value=0.0)
    assert noisy.min() == 0.0 and noisy.max() == 1.0
    # x + N(0.5, 0.5) clipped at 0 and 1: P(<0) = P(>1) = Phi(-1) ~ 0.159 each
    assert abs((noisy == 0).mean() - 0.159) < 0.01


def test_same_seed_same_noise_other_seed_other_noise():
    spec = NoiseSpec()
    np.testing.assert_array_equal(draw(spec, seed=(4, 5)), draw(spec, seed=(4, 5)))
    assert not np.array_equal(draw(spec, seed=(4, 5)), draw(spec, seed=(4, 6)))


@pytest.mark.parametrize("kind, amount", [("salt-pepper", 0.2), ("mask", 0.3)])
def test_impulse_noises_touch_the_configured_fraction(kind, amount):
    noisy = draw(NoiseSpec(kind, amount=amount))
    assert abs((noisy != 0.5).mean() - amount) < 0.01


def test_poisson_and_speckle_keep_the_mean():
    assert abs(draw(NoiseSpec("poisson", peak=30)).mean() - 0.5) < 0.01
    assert abs(draw(NoiseSpec("speckle", std=0.2)).mean() - 0.5) < 0.01


def test_blind_noise_draws_one_std_per_image_in_the_range():
    from dae_cli.backend import tf
    from dae_cli.noise import NoiseSpec, add_noise

    clean = np.full((64, 32, 32, 1), 0.5, np.float32)
    spec = NoiseSpec("gaussian", mean=0.0, std_range=(0.02, 0.2))
    noisy = add_noise(clean, tf.constant([3, 4]), spec).numpy()
    stds = (noisy - clean).reshape(64, -1).std(axis=1)
    assert 0.015 < stds.min() and stds.max() < 0.21
    assert stds.max() - stds.min() > 0.1  # not one std for all
    again = add_noise(clean, tf.constant([3, 4]), spec).numpy()
    np.testing.assert_array_equal(noisy, again)  # seeded
