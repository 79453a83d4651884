"""checkov finds nothing to fail in any rendered module; every skip is inline with its reason.

checkov lives in its own venv (``scripts/install-checkov``; its ``bc-python-hcl2`` would
replace python-hcl2). It is slow to start, so one run scans every project and the tests read
its JSON report; the fixture prints how long that run took.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import qr.terraform_templates
from tests import terraform_projects
from tests.terraform_projects import PROJECTS, STAGES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def checkov() -> Path:
    binary = Path(os.environ.get("QR_CHECKOV") or REPO / ".venv-checkov" / "bin" / "checkov")
    if not binary.exists():
        pytest.fail(f"checkov is not installed at {binary}: run scripts/install-checkov")
    return binary


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Mapping[str, Any]:
    base = tmp_path_factory.mktemp("checkov")
    # checkov skips hidden directories, so the modules are rendered outside .qr/.
    for name in PROJECTS:
        source = terraform_projects.make(base / "src", name)
        terraform_projects.render(source, STAGES.get(name), base / "out" / name)
    started = time.perf_counter()
    result = subprocess.run(
        [
            *(str(checkov()), "-d", str(base / "out"), "--framework", "terraform"),
            *("--skip-download", "--output", "json"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    print(f"checkov over {len(PROJECTS)} projects: {time.perf_counter() - started:.1f}s")
    assert result.returncode in (0, 1), result.stderr[-2000:]
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def project_checks(report: Mapping[str, Any], kind: str, project: str) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = report["results"][kind]
    return [c for c in checks if c["file_path"].startswith(f"/{project}/")]


@pytest.mark.parametrize("project", PROJECTS)
def test_no_failed_checks(report: Mapping[str, Any], project: str) -> None:
    assert report["summary"]["parsing_errors"] == 0
    # A scan that found nothing would pass trivially: make sure it read the module.
    assert len(project_checks(report, "passed_checks", project)) >= 20
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for c in project_checks(report, "failed_checks", project)
    ]
    assert failed == []


def test_every_skip_is_used_and_explained(report: Mapping[str, Any]) -> None:
    templates = Path(next(iter(qr.terraform_templates.__path__)))
    written: set[tuple[str, str]] = set()
    for template in templates.glob("*.tf.j2"):
        for check_id, reason in re.findall(r"# checkov:skip=(\w+):(.*)", template.read_text()):
            assert len(reason.strip()) > 20, f"{template.name}: {check_id} needs a reason"
            written.add((check_id, reason.strip()))
    skipped = {
        (c["check_id"], c["check_result"]["suppress_comment"])
        for c in report["results"]["skipped_checks"]
    }
    # Every skip in the templates is one checkov recognised (a real check that applies).
    assert written == skipped
