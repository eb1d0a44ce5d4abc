"""gancore: GAN training in which every improvement method is an installable plugin."""

from gancore.version import __version__
from gancore.hookspecs import hookimpl
from gancore.config import ConfigError, RunConfig
from gancore.losses import LossTerm
from gancore.run import Run
from gancore.trainer import Trainer
from gancore.api import load_config, resume, train
from gancore.pretrained import export, from_pretrained, push_to_hub
from gancore.importing import import_checkpoint
from gancore.comparison import compare

__all__ = [
    "ConfigError",
    "LossTerm",
    "Run",
    "RunConfig",
    "Trainer",
    "__version__",
    "compare",
    "export",
    "from_pretrained",
    "hookimpl",
    "import_checkpoint",
    "load_config",
    "push_to_hub",
    "resume",
    "train",
]
