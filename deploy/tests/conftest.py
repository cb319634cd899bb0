"""Fixtures of the deploy tests: Helm (built by the project's own script when missing) and
the chart rendered once per ci/ values file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploy_support import CI_VALUES, REPO, helm_template  # noqa: E402


@pytest.fixture(scope="session")
def helm() -> str:
    """Path of the pinned Helm; deploy/tools/install-helm.sh builds it on a bare machine."""
    result = subprocess.run(
        ["bash", str(REPO / "deploy" / "tools" / "install-helm.sh")],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, f"install-helm.sh failed:\n{result.stderr[-3000:]}"
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def rendered(helm: str) -> dict[str, list[dict]]:
    """ci/ values file name -> its rendered manifests (the chart's defaults as 'default')."""
    out = {"default": helm_template(helm)}
    for values in CI_VALUES:
        out[values.stem] = helm_template(helm, "-f", str(values))
    return out


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "values_name" in metafunc.fixturenames:
        metafunc.parametrize("values_name", ["default", *(v.stem for v in CI_VALUES)])
