"""Test-suite set-up shared by tests/ and plugins/*/tests/: nothing is downloaded from the internet.

Downloads are switched off (``GANCORE_OFFLINE=1``) for every test; the tests of downloading code
serve their files from a loopback server (the ``http_files`` fixture switches downloads back on).
"""

import pytest


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANCORE_OFFLINE", "1")
