"""``--logger mlflow``: an MLflow run in a local store under the output folder, no server:
``sqlite:///FOLDER/mlflow.db`` (artifacts in ``FOLDER/mlartifacts``). View it with
``mlflow ui --backend-store-uri sqlite:///FOLDER/mlflow.db``.

The run is named RUN in the experiment EXPERIMENT and carries the tags (``preset``, ``seed``...);
the config as parameters, every scalar with its step, artifacts as files, the checkpoint's path as
the tag ``memad.checkpoint``. Scalars are sent in batches (every 200, and before anything else).
MLflow's usage telemetry is turned off (``MLFLOW_DISABLE_TELEMETRY=true``) unless already set.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

from memad.tracking import Logger, require

#: MLflow's limits: parameters and metrics per batch call, characters of a parameter value.
PARAMS_PER_BATCH, METRICS_PER_BATCH, MAX_PARAM = 100, 1000, 6000
FLUSH_EVERY = 200


def tracking_uri(folder: Path) -> str:
    """The sqlite store of ``folder``: ``sqlite:////abs/FOLDER/mlflow.db``."""
    return f"sqlite:///{(Path(folder) / 'mlflow.db').resolve()}"


class MLflowLogger(Logger):
    """An MLflow run in a local sqlite store, FOLDER/mlflow.db (no server): config, scalars, artifacts."""

    def __init__(self, folder: Path, run: str, experiment: str, tags: Mapping[str, str]):
        super().__init__(folder, run, experiment, tags)
        self.check()
        from mlflow.tracking import MlflowClient

        for name in ("mlflow", "alembic"):  # database set-up chatter
            logging.getLogger(name).setLevel(logging.WARNING)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.uri = tracking_uri(self.folder)
        with warnings.catch_warnings():  # deprecation notes from mlflow's own dependencies
            warnings.simplefilter("ignore")
            self.client = MlflowClient(tracking_uri=self.uri)
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found is not None else self.client.create_experiment(
            experiment, artifact_location=(self.folder / "mlartifacts").resolve().as_uri())
        self.run_id = self.client.create_run(experiment_id, run_name=run, tags=self.tags).info.run_id
        self._pending: list[Any] = []

    @classmethod
    def check(cls) -> None:
        # A local store needs no network: MLflow's usage telemetry stays off unless the user says otherwise.
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        require("mlflow", "mlflow")

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:MAX_PARAM]) for k, v in params.items()]
        for i in range(0, len(items), PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[i:i + PARAMS_PER_BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending += [Metric(k, float(v), now, int(step)) for k, v in metrics.items()]
        if len(self._pending) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Send the scalars waiting."""
        while self._pending:
            batch, self._pending = self._pending[:METRICS_PER_BATCH], self._pending[METRICS_PER_BATCH:]
            self.client.log_batch(self.run_id, metrics=batch)

    def log_artifact(self, path: Path) -> None:
        self.flush()
        self.client.log_artifact(self.run_id, str(path))

    def log_reference(self, name: str, path: str) -> None:
        self.client.set_tag(self.run_id, f"memad.{name}", str(path))

    def close(self, failed: bool = False) -> None:
        self.flush()
        self.client.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")
