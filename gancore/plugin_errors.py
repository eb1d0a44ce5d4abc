"""The errors of plugins: unknown, of the wrong kind, badly declared, or failing inside a hook."""

__all__ = ["HookError", "PluginError", "PluginKindError", "UnknownPluginError"]


class PluginError(Exception):
    """A problem with a plugin: unknown, badly declared, conflicting, or failing."""


class UnknownPluginError(PluginError, LookupError):
    """A run names a plugin that is not installed."""


class PluginKindError(PluginError, LookupError):
    """A run lists a backbone or ops provider among its method plugins."""


class HookError(PluginError):
    """An exception raised inside a plugin's hook implementation, re-raised with both names."""

    def __init__(self, plugin: str, hook: str, error: BaseException):
        self.plugin = plugin
        self.hook = hook
        self.error = error
        super().__init__(f"hook {hook} of plugin {plugin!r} failed: {type(error).__name__}: {error}")
