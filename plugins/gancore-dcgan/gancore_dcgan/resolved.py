"""The check that a backbone config has every data-dependent field filled before networks are built."""

from typing import Any

import attrs

__all__ = ["require_resolved"]


def require_resolved(config: Any, owner: str) -> None:
    """Raise a ValueError naming the fields of ``config`` that are still None."""
    missing = [f.name for f in attrs.fields(type(config)) if getattr(config, f.name) is None]
    if missing:
        raise ValueError(
            f"{owner} needs a resolved {type(config).__name__}, but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} None; fill them from the data set with "
            f"config.with_data(info) (or set them explicitly)"
        )
