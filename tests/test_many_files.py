"""The per-file steps of a folder run, made cheap for thousands of files (issue 25), give
the names and order they gave before."""

from __future__ import annotations

import os
from pathlib import Path

from dae_cli.apply.outcomes import output_paths
from dae_cli.io import image_io


def _old_output_paths(inputs: list[Path], out: Path, tag: str) -> list[Path]:
    """What `output_paths` computed under a directory before issue 25: each input resolved."""
    suffixes = [f".{tag}{image_io.output_extension(path, None)}" for path in inputs]
    resolved = [path.resolve() for path in inputs]
    base = Path(os.path.commonpath([str(p.parent) for p in resolved]))
    targets = [out / p.parent.relative_to(base) / (p.stem + suffix) for p, suffix in zip(resolved, suffixes)]
    seen = {target: targets.count(target) for target in targets}
    return [
        target.with_name(source.name + suffix) if seen[target] > 1 else target
        for source, target, suffix in zip(inputs, targets, suffixes)
    ]


def test_outputs_under_a_directory_are_named_as_before(tmp_path, monkeypatch):
    tree = tmp_path / "in"
    for name in ("a.png", "b.c.png", "sub/a.png", "sub/deeper/x.jpg", "other/.hidden/y.png", "other/z.tif"):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(b"")
    (tree / "link.png").symlink_to(tree / "other" / "z.tif")  # resolved to its target's folder
    (tmp_path / "linked").symlink_to(tree / "sub", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    inputs = [
        *sorted(tree.rglob("*.png")),
        tree / "other" / "z.tif",
        Path("in/sub/deeper/x.jpg"),  # relative
        Path("linked/a.png"),  # through a linked folder
        Path("in/sub/../a.png"),
    ]
    out = tmp_path / "out"
    assert output_paths(inputs, out, "denoised") == _old_output_paths(inputs, out, "denoised")


def test_a_directory_is_expanded_in_the_order_paths_sort(tmp_path):
    names = ["b.png", "a-b.png", "a/b.png", "a/c.png", "A.png", "a.b/c.png", "z/y/x.png", "_.png"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = image_io.expand_inputs([str(tmp_path)])
    assert found == sorted(tmp_path / name for name in names)
