"""The shape of `dae_cli/` that the structure issue set, checked: `.ci/run` runs this beside ruff.

- No function is longer than `MAX_FUNCTION_LINES` lines.
- The architectures' names appear as strings only in the model package and the config:
  everything else works through `models.denoiser.Denoiser`.
- Imports run downward only: `cli` -> `ui`, `api` -> `apply`, `training` -> `models` ->
  `io` -> the foundation (`config`, `errors`, `backend`, `extras`, `hardware`,
  `noise`, `noise_level`); `apply` and `training` may use each other. Imports inside functions
  count too. The package's `__init__` is its public face, above them all: it re-exports
  the Python API.
- The commands module stays under `MAX_COMMANDS_LINES` lines.

    python scripts/check_structure.py        # prints each breach, exits 1 if there is one
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dae_cli"
MAX_FUNCTION_LINES = 50
MAX_COMMANDS_LINES = 300
ARCHITECTURE_NAMES = {"dense", "conv"}
ARCHITECTURE_HOMES = ("models/", "config.py")
LAYERS = {"io": 1, "models": 2, "training": 3, "apply": 3, "ui": 4, "api": 4, "cli": 5, "__main__": 6, "__init__": 7}


def layer(module: str) -> int:
    """The layer of `dae_cli.<module>` (a dotted name below the package); 0 is the foundation."""
    return LAYERS.get(module.split(".")[0], 0)


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module below dae_cli) of every import of dae_cli in `tree`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "dae_cli":
            below = node.module.split(".", 1)[1] if "." in node.module else ""
            names = [alias.name for alias in node.names] if not below else [below]
            found += [(node.lineno, name if not below else below) for name in names]
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, alias.name.split(".", 1)[1]) for alias in node.names if alias.name.startswith("dae_cli.")
            ]
    return found


def breaches(path: Path) -> list[str]:
    relative = path.relative_to(PACKAGE).as_posix()
    module = relative.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{relative}:{node.lineno}: {node.name} is {length} lines (at most {MAX_FUNCTION_LINES})")
        if (
            isinstance(node, ast.Constant)
            and node.value in ARCHITECTURE_NAMES
            and not relative.startswith(ARCHITECTURE_HOMES)
        ):
            found.append(f"{relative}:{node.lineno}: names the architecture {node.value!r} outside the model package")
    for line, imported in imported_modules(tree):
        if layer(imported) > layer(module):
            found.append(f"{relative}:{line}: imports dae_cli.{imported}, a layer above {module}")
    if relative == "cli/commands.py" and len(path.read_text().splitlines()) >= MAX_COMMANDS_LINES:
        found.append(f"{relative}: {len(path.read_text().splitlines())} lines (under {MAX_COMMANDS_LINES})")
    return found


def main() -> int:
    found = [breach for path in sorted(PACKAGE.rglob("*.py")) for breach in breaches(path)]
    for breach in found:
        print(breach)
    print(f"{len(found)} breach(es) of the structure in {PACKAGE}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
