"""Messages to the person running gancore: one ``gancore: warning: …`` line on stderr, no source line."""

import sys

__all__ = ["warn"]


def warn(text: str) -> None:
    """Print ``gancore: warning: <text>`` on stderr (a message for the user, not a Python warning
    for a developer: no file name, no code line, shown every time)."""
    print(f"gancore: warning: {text}", file=sys.stderr, flush=True)
