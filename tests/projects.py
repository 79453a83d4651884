"""Running a user project's own test suite the way its user would: ``pytest`` in its folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_project_tests(root: Path, basetemp: Path) -> subprocess.CompletedProcess[str]:
    """``python -m pytest -q`` in ``root`` (our own pytest settings and caches stay out of it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--basetemp",
            str(basetemp),
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
