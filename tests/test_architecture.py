"""The house's shape, checked: import-linter's contracts (pyproject.toml [tool.importlinter]) and module sizes.

Layers point one way (platform <- telemetry <- ingest <- privacy <- curate <- publish <- business | security |
governance <- generator <- pipeline <- cli), no module or package of jobs imports another in a cycle (imports inside
functions count), and the registry imports no job.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lake_layout.config import PROJECT_ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
# The command line (argument parsing, one module per command group) and the generator may be larger; nothing else.
MAX_LINES = 800
EXEMPT = ("jobs/cli/", "jobs/generator/", "jobs/telemetry/upload_pb2.py")


def _lint(*args: str, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_import_contracts_are_kept() -> None:
    result = _lint()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout, result.stdout


@pytest.mark.parametrize("violation, contract", [
    # platform reaching up into a domain breaks the layers, and makes a cycle with bronze, which imports platform
    ("jobs/platform/lake.py", "jobs layers point one way"),
    # two modules of one package importing each other (late, inside a function) is a cycle
    ("jobs/ingest/door.py", "no import cycles in jobs"),
])
def test_the_contracts_catch_a_violation(tmp_path: Path, violation: str, contract: str) -> None:
    """The same check on a copy of the tree with one upward import added must fail, naming the broken contract."""
    import shutil

    for name in ("jobs", "lake_layout", "infra"):
        shutil.copytree(PROJECT_ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.jar"))
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / violation, "a") as source:
        source.write("\n\ndef _upward():\n    from jobs.ingest import bronze\n\n    return bronze\n")
    result = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": str(tmp_path), "PATH": str(LINT_IMPORTS.parent)})
    assert result.returncode != 0
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(contract in line for line in broken), result.stdout


def test_no_module_outside_the_cli_and_the_generator_is_over_800_lines() -> None:
    sizes = {str(p.relative_to(PROJECT_ROOT)): len(p.read_text().splitlines()) for p in (PROJECT_ROOT / "jobs").rglob("*.py")}
    big = {path: n for path, n in sizes.items() if n > MAX_LINES and not path.startswith(EXEMPT)}
    assert not big, big
