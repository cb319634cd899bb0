"""What the deploy tests share: paths, the pinned versions and a `helm template` helper.
(The tests run with --import-mode=importlib, so conftest.py puts this folder on sys.path.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "opengpsoc"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
# The Kubernetes version manifests are rendered for and validated against: one whose
# schemas kubernetes-validate bundles, and Helm v3.19's own default.
KUBE_VERSION = "1.34.0"
RELEASE = "gpsoc"
NAMESPACE = "opengpsoc"


def helm_template(helm: str, *args: str) -> list[dict]:
    result = subprocess.run(
        [helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
         "--kube-version", KUBE_VERSION, *args],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def missing_tool(what: str) -> None:
    """A test tool is not installed: the check fails (with the fix), never skips quietly."""
    import pytest

    pytest.fail(f"{what} is not installed: it is in the root dev dependency group; run `make sync`")
