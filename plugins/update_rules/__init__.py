"""Built-in memory update rules, registered as kind ``update_rule``."""

from memad import hookimpl

from .rules import EMAUpdate, MNADCodeUpdate, MNADUpdate, NoUpdate


@hookimpl
def memad_register(registry):
    registry.add("update_rule", "mnad", MNADUpdate)
    registry.add("update_rule", "mnad_code", MNADCodeUpdate)
    registry.add("update_rule", "ema", EMAUpdate)
    registry.add("update_rule", "none", NoUpdate)
