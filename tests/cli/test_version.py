"""``framework --version`` names the installed release, the one ``framework.__version__`` and
the package metadata carry."""

from __future__ import annotations

from importlib.metadata import version

import framework
from tests.cli.helpers import cli


def test_version_is_one_number_everywhere() -> None:
    done = cli("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"framework {framework.__version__}"
    assert version("framework") == framework.__version__
