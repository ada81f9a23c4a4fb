"""What the README promises scripts stays true of the code."""

import re
from pathlib import Path

from dae_cli import ExitCode
from dae_cli.cli.flags import EXIT_CODES_HELP

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_exit_code_table_matches_the_enum_and_the_help():
    rows = re.findall(r"^\| (\d+) \| .* \| `(\w+)` \|$", README, flags=re.M)
    assert {name: int(code) for code, name in rows} == {code.name: code.value for code in ExitCode}
    listed = re.findall(r"(?:^|; )(\d+) ", EXIT_CODES_HELP.split(":", 1)[1].strip())
    assert sorted(map(int, listed)) == sorted(code.value for code in ExitCode)


def test_readme_test_command_is_what_ci_runs():
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "$ pytest" in README and ci.rstrip().endswith("pytest")


def test_readme_python_section_runs_as_written(tmp_path):
    """The README's Python section, run as a user would paste it, in an empty folder."""
    import subprocess
    import sys

    from conftest import cli_env

    section = README.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=cli_env(), timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "(64, 96, 3) uint8",
        "float64",
        "(28, 28)",
        "image must be uint8, uint16 or floats on [0, 1], not int64",
    ]
    assert (tmp_path / "my-model" / "dae.json").exists()


def test_the_changelog_describes_this_version():
    from dae_cli import __version__

    changelog = (Path(__file__).resolve().parents[1] / "CHANGELOG.md").read_text()
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", changelog, flags=re.M)
    assert released and released[0] == __version__, released
    assert "## [Unreleased]" in changelog and "keepachangelog.com" in changelog
