"""The pure network: parts built from the registry (:mod:`.parts`), wired into one ``nn.Module``
(:mod:`.network`), and the plugin contract checked on it when a detector is built (:mod:`.contract`)."""

from .contract import ContractError, check_contract
from .network import Network, NetworkOutput
from .parts import build_component, build_scorer

__all__ = ["Network", "NetworkOutput", "build_component", "build_scorer", "check_contract", "ContractError"]
