"""Every hook gancore calls; each spec's docstring is its contract, including its combine rule."""

import pluggy

hookspec = pluggy.HookspecMarker("gancore")
hookimpl = pluggy.HookimplMarker("gancore")
