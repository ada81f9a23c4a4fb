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
