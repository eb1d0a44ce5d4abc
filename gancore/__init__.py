"""gancore: GAN training in which every improvement method is an installable plugin."""

__version__ = "0.1.0"

from gancore.hookspecs import hookimpl  # noqa: E402
from gancore.config import ConfigError, RunConfig  # noqa: E402
from gancore.losses import LossTerm  # noqa: E402
from gancore.run import Run  # noqa: E402
from gancore.trainer import Trainer  # noqa: E402
from gancore.api import load_config, resume, train  # noqa: E402
from gancore.pretrained import export, from_pretrained, push_to_hub  # noqa: E402
from gancore.importing import import_checkpoint  # noqa: E402

__all__ = [
    "ConfigError",
    "LossTerm",
    "Run",
    "RunConfig",
    "Trainer",
    "__version__",
    "export",
    "from_pretrained",
    "hookimpl",
    "import_checkpoint",
    "load_config",
    "push_to_hub",
    "resume",
    "train",
]
