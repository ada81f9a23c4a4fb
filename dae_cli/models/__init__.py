"""Models: the networks of both architectures and dae's own layers (`networks`), the
model directory on disk (`artifacts`), the built-in trained models (`builtin_models`)
and `dae export` (`export`, `onnx_export`)."""
