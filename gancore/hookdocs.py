"""The hook reference, rendered from the hook specs' docstrings (docs/hooks.md)."""

import inspect

from gancore import hookspecs

__all__ = ["hook_names", "render_hooks_markdown"]


def hook_names() -> list[str]:
    """Names of every hook spec, in the order a run meets them."""
    names = [name for name, obj in vars(hookspecs).items() if name.startswith("gancore_") and callable(obj)]
    return names


def _signature(name: str) -> str:
    sig = inspect.signature(getattr(hookspecs, name))
    params = ", ".join(sig.parameters)
    return f"{name}({params})"


def render_hooks_markdown() -> str:
    """The hook reference as markdown: one section per hook with its full contract."""
    lines = [
        "# Hook reference",
        "",
        "<!-- Generated from gancore/hookspecs.py by `gancore hooks > docs/hooks.md`; do not edit. -->",
        "",
        "Implement a hook by defining a method of that name on your plugin class, decorated with",
        "`@gancore.hookimpl`. It may accept any subset of the arguments listed. See",
        "[writing-plugins.md](writing-plugins.md).",
        "",
        "| hook | first line |",
        "|---|---|",
    ]
    for name in hook_names():
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        lines.append(f"| [`{name}`](#{name}) | {doc.splitlines()[0] if doc else ''} |")
    lines.append("")
    for name in hook_names():
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        lines += [f"## {name}", "", "```python", _signature(name), "```", "", doc, ""]
    return "\n".join(lines)
