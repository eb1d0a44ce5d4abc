"""The check that a backbone config has every data-dependent field filled before networks are built."""

from typing import Any

import attrs

__all__ = ["require_resolved"]


#: Fields that may stay None in a resolved config (None is a meaningful setting for them).
OPTIONAL_FIELDS = frozenset({"d_channel_multiplier"})


def require_resolved(config: Any, owner: str) -> None:
    """Raise a ValueError naming the fields of ``config`` that are still None (the data-dependent ones)."""
    missing = [
        f.name for f in attrs.fields(type(config)) if f.name not in OPTIONAL_FIELDS and getattr(config, f.name) is None
    ]
    if missing:
        raise ValueError(
            f"{owner} needs a resolved {type(config).__name__}, but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} None; fill them from the data set with "
            f"config.with_data(info) (or set them explicitly)"
        )
