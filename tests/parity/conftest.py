"""The parity tests reuse the core suite's local Hub server (tests/hub_server.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub_server import hub_fixture  # noqa: E402,F401  (the "hub" fixture)
