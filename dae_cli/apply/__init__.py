"""Applying a trained model to files: denoise, encode and decode, what becomes of each
input (`outcomes`), the noise-level estimate (`noise_level`) and `dae evaluate`
(`evaluation`, `metrics`)."""
