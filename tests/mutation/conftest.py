"""Fixtures of the in-process mutation tests.

`key_kubeconfig`: an admin kubeconfig of a real kube-apiserver. Under `make mutation` every mutant
runs pytest afresh (mutmut forks per mutant), so scripts/mutation.sh starts one control plane for
the whole run (tests/mutation/control_plane.py) and passes its kubeconfig in
MCP_MUTATION_KUBECONFIG; under `make test` the suite's session-wide `kube` fixture serves.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def key_kubeconfig(request: pytest.FixtureRequest) -> Path:
    shared = os.environ.get("MCP_MUTATION_KUBECONFIG")
    if shared:
        return Path(shared)
    return Path(request.getfixturevalue("kube").kubeconfig)
