"""What the import hooks receive and return: a published checkpoint as read, and what backbone and method plugins make of it."""

from typing import Any, Mapping

import attrs
import torch

from gancore.backbone import DataInfo
from gancore.checkpoint import CheckpointError
from gancore.pickle_reader import PickledModule, PickledTFNetwork

__all__ = ["CheckpointImportError", "ImportedModel", "ImportedModules", "PublishedCheckpoint", "StateDict"]


class CheckpointImportError(CheckpointError):
    """A checkpoint that cannot be imported (unknown networks, unmapped tensors, unsupported settings)."""


@attrs.frozen
class StateDict:
    """A network saved as a plain PyTorch state dict (``torch.save(net.state_dict())``, e.g.
    BigGAN-PyTorch's ``G.pth``), read with ``torch.load(weights_only=True)``: its tensors by name,
    and the file it came from."""

    state: Mapping[str, torch.Tensor]
    file: str

    def tensors(self) -> Mapping[str, torch.Tensor]:
        """The tensors by their dotted names."""
        return self.state


@attrs.frozen(kw_only=True)
class PublishedCheckpoint:
    """A published checkpoint as read, before any plugin maps it.

    ``networks`` holds the pickled networks by their name in the file (``"G"``, ``"D"``,
    ``"G_ema"`` for NVIDIA's PyTorch pickles; ``"G"``, ``"D"``, ``"Gs"`` for TF-era ones; ``"G"``,
    ``"D"``, ``"G_ema"`` for state-dict files) as :class:`~gancore.pickle_reader.PickledModule`,
    :class:`~gancore.pickle_reader.PickledTFNetwork` or :class:`StateDict` records; ``extras`` the file's other
    entries (e.g. ``training_set_kwargs``).
    """

    source: str
    sha256: str
    networks: Mapping[str, PickledModule | PickledTFNetwork | StateDict]
    extras: Mapping[str, Any] = attrs.field(factory=dict)

    def tensor_names(self) -> set[str]:
        """Every tensor of every network, as ``"<network>.<dotted name>"``."""
        names: set[str] = set()
        for net_name, net in self.networks.items():
            if isinstance(net, (PickledModule, StateDict)):
                names.update(f"{net_name}.{key}" for key in net.tensors())
            else:
                names.update(f"{net_name}.{key}" for key in net.all_variables())
        return names


@attrs.frozen(kw_only=True)
class ImportedModel:
    """What a backbone plugin makes of a :class:`PublishedCheckpoint`.

    :param backbone: the run file's ``[backbone]`` table: ``{"name": ..., **settings}``.
    :param data_info: the shape and class count of the data the networks were trained on.
    :param tensors: ``{"G": state dict, "D": ..., "G_ema": ...}`` in gancore's names, loaded strictly.
    :param claimed: the checkpoint tensors this mapping used, as ``"<network>.<dotted name>"``.
    :param notes: where the imported model differs on purpose (one line each, for the model card).
    """

    backbone: Mapping[str, Any]
    data_info: DataInfo
    tensors: Mapping[str, Mapping[str, torch.Tensor]]
    claimed: frozenset[str]
    notes: tuple[str, ...] = ()
    #: The run file's ``plugins`` entries of the methods whose modules the file holds (added by
    #: their plugins' ``gancore_import_modules``).
    plugins: tuple[Mapping[str, Any], ...] = ()


@attrs.frozen(kw_only=True)
class ImportedModules:
    """What a method plugin makes of its own modules in a published checkpoint.

    :param entry: the run file's ``plugins`` entry: ``{"name": ..., **settings}``.
    :param tensors: per network (``"G"``, ``"D"``, ``"G_ema"``), the plugin's tensors under their
        names in the gancore network (e.g. ``"attachments.glead.stages.b8.weight"``).
    :param claimed: the checkpoint tensors used, as ``"<network>.<dotted name>"``.
    :param notes: where the imported modules differ on purpose (one line each, for the model card).
    """

    entry: Mapping[str, Any]
    tensors: Mapping[str, Mapping[str, torch.Tensor]]
    claimed: frozenset[str]
    notes: tuple[str, ...] = ()
