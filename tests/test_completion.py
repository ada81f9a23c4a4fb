"""Shell completion: built-in model names, model directories and enum flag values."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli_env

from dae_cli.cli.completion import complete_model
from dae_cli.models.builtin_models import BUILTIN_MODELS

DAE = Path(sys.executable).parent / "dae"  # the console script of this install


def bash_complete(words, cwd):
    """What bash offers for the command line `words` (last word being typed), through
    the script that `dae --show-completion bash` prints, as an interactive shell runs it."""
    env = cli_env(
        PATH=f"{DAE.parent}{os.pathsep}{os.environ['PATH']}", _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1"
    )
    script = subprocess.run([str(DAE), "--show-completion", "bash"], capture_output=True, text=True, env=env)
    assert script.returncode == 0, script.stderr
    quoted = " ".join(f"'{word}'" for word in words)
    program = f"""{script.stdout}
COMP_WORDS=({quoted})
COMP_CWORD={len(words) - 1}
_dae_completion dae
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    result = subprocess.run(["bash", "--norc", "-c", program], capture_output=True, text=True, env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line]


@pytest.fixture
def workdir(tmp_path):
    for folder in ("runs/best", "mnist-models", ".hidden"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "notes.txt").write_text("")
    return tmp_path


def test_bash_completes_built_in_models_and_directories(workdir):
    assert bash_complete(["dae", "denoise", "-m", ""], workdir) == [*BUILTIN_MODELS, "mnist-models/", "runs/"]
    assert bash_complete(["dae", "encode", "--model", "mn"], workdir) == ["mnist", "mnist-models/"]
    assert bash_complete(["dae", "info", "ph"], workdir) == ["photo", "photo-gaussian", "photo-real", "photo-gray"]
    # No built-in name fits: bash's own path completion takes over (complete -o default).
    assert bash_complete(["dae", "denoise", "-m", "ru"], workdir) == []


@pytest.mark.parametrize(
    "words, expected",
    [
        (["dae", "train", "--noise", "s"], ["salt-pepper", "speckle"]),
        (
            ["dae", "noise", "x.png", "--noise", ""],
            ["gaussian", "salt-pepper", "speckle", "poisson", "mask", "poisson-gaussian", "camera", "mixture"],
        ),
        (["dae", "train", "--strategy", "m"], ["mirrored", "multi-worker"]),
        (["dae", "train", "--lr-schedule", ""], ["constant", "cosine"]),
        (["dae", "train", "--precision", "f"], ["float32"]),
        (["dae", "evaluate", "--dataset", ""], ["mnist", "mnist-sample"]),
        (["dae", "export", "--format", ""], ["saved-model", "onnx"]),
        (["dae", "ev"], ["evaluate"]),
    ],
)
def test_bash_completes_enum_values(workdir, words, expected):
    assert bash_complete(words, workdir) == expected


def test_complete_model_offers_names_then_directories(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    assert complete_model("") == [*BUILTIN_MODELS, "mnist-models/", "runs/"]
    assert complete_model("p") == ["photo", "photo-gaussian", "photo-real", "photo-gray"]
    assert complete_model("runs/") == []


def test_install_and_show_completion(tmp_path):
    env = cli_env(HOME=str(tmp_path), _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1")
    installed = subprocess.run(
        [sys.executable, "-m", "dae_cli", "--install-completion", "bash"], capture_output=True, text=True, env=env
    )
    assert installed.returncode == 0, installed.stderr
    script = tmp_path / ".bash_completions" / "dae.sh"
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()
    assert "complete -o default -F _dae_completion dae" in script.read_text()
    for shell in ("zsh", "fish"):
        shown = subprocess.run(
            [sys.executable, "-m", "dae_cli", "--show-completion", shell], capture_output=True, text=True, env=env
        )
        assert shown.returncode == 0 and "_DAE_COMPLETE=complete_" + shell in shown.stdout, shown.stderr


def test_completion_never_imports_tensorflow():
    script = """
import os, sys
os.environ.update(_DAE_COMPLETE="complete_bash", COMP_WORDS="dae denoise -m ", COMP_CWORD="3")
from dae_cli.cli.entry import main
try:
    main([])
except SystemExit:
    pass
print('tensorflow' in sys.modules, file=sys.stderr)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=cli_env())
    assert "mnist" in result.stdout.split()
    assert result.stderr.strip().endswith("False"), result.stderr
