"""Built-in experiment loggers, registered as kind ``logger`` (``--logger tensorboard``, ``--logger mlflow``).

Both need the optional extras: ``pip install "memad[tracking]"`` (tensorboard, mlflow).
"""

from memad import hookimpl

from .mlflow_logger import MLflowLogger
from .tensorboard_logger import TensorBoardLogger


@hookimpl
def memad_register(registry):
    registry.add("logger", "tensorboard", TensorBoardLogger)
    registry.add("logger", "mlflow", MLflowLogger)
