"""The import direction: each layer imports only the layers below it, and the product never loads
what only development needs.

From the bottom: ``config`` (settings), ``schemas`` (wire types), ``streams`` (the rules and the
worker), ``handlers`` (bridge, writer, import, replay), then the CLI package ``shopsync``.
``hubspot_sandbox`` stands alone. ``devtools`` (local runs, the sample store, simulate, demo) may
use the product, never the reverse. The modules are read with ``ast``, so an import inside a
function or under ``TYPE_CHECKING`` counts as much as one at the top.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

ALLOWED: dict[str, set[str]] = {
    "config": {"config"},
    "schemas": {"config", "schemas"},
    "streams": {"config", "schemas", "streams"},
    "handlers": {"config", "schemas", "streams", "handlers"},
    "hubspot_sandbox": {"hubspot_sandbox"},
}
"""Which of the project's packages each product package may import."""

PROJECT = {*ALLOWED, "localkafka", "devtools", "shopsync", "tests", "bench"}
INSTALLED = sorted(PROJECT - {"tests", "bench"})
"""The packages pyproject.toml installs: none of them may need a dev-only dependency."""

DEV_ONLY = {"pytest", "_pytest", "testcontainers", "hypothesis", "docker"}


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in a file, wherever it stands."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def imports_of(package: str) -> Iterator[tuple[str, str]]:
    """("file:line", top-level package) of every import in a package's modules."""
    root = REPO / package
    assert root.is_dir(), f"{package}/ is missing"
    for path in sorted(root.rglob("*.py")):
        for line, module in imported_modules(path):
            yield f"{path.relative_to(REPO)}:{line}", module.split(".")[0]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(package: str) -> None:
    wrong = [
        f"{where} imports {top}"
        for where, top in imports_of(package)
        if top in PROJECT and top not in ALLOWED[package]
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("package", INSTALLED)
def test_installed_code_never_imports_dev_only_packages(package: str) -> None:
    wrong = [f"{where} imports {top}" for where, top in imports_of(package) if top in DEV_ONLY]
    assert not wrong, "\n".join(wrong)


def test_runtime_dependencies_are_what_the_product_needs() -> None:
    """pytest and friends are in the dev extra only; every package the code imports is installed."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    runtime = {re.split(r"[\s<>=!~;\[]", dep, maxsplit=1)[0] for dep in project["project"]["dependencies"]}
    assert not runtime & DEV_ONLY, f"dev-only packages among the runtime dependencies: {runtime & DEV_ONLY}"
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {f"{name}*" for name in INSTALLED} <= set(include), f"not installed: {INSTALLED} vs {include}"


def loaded_after(statement: str) -> set[str]:
    """The top-level packages a fresh interpreter holds after ``statement``."""
    probe = f"import sys\n{statement}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    return set(result.stdout.split())


def test_replay_does_not_load_faust() -> None:
    """Replay folds the topics with the in-process pipeline: the faust worker is not part of it."""
    loaded = loaded_after("import handlers.replay")
    assert "handlers" in loaded
    assert not loaded & {"faust", "shopsync", "devtools", *DEV_ONLY}


def test_the_cli_loads_devtools_only_for_the_commands_that_use_them() -> None:
    """``shopsync worker`` and the other services start without the local-run helpers."""
    loaded = loaded_after("import shopsync.cli")
    assert "shopsync" in loaded
    assert not loaded & {"devtools", *DEV_ONLY}
