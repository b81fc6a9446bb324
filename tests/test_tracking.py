"""Experiment tracking: the training loop's step and epoch callbacks, the `logger` component kind, and
`memad train|compare --logger tensorboard --logger mlflow`, read back with TensorBoard's event reader and
MLflow's client (loss scalars, config parameters, final metrics, artifacts, tags)."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pytest

import memad
from memad.cli import main
from memad.errors import ConfigError
from memad.registry import get_registry
from memad.tracking import Logger, Tracking, resolve_loggers

SCALE = {"data.image_size": 32, "encoder.widths": [8, 16, 32, 64], "train.epochs": 2, "train.max_steps_per_epoch": 3,
         "train.progress": False, "train.device": "cpu", "test.mode": "batched"}
SET = [item for k, v in SCALE.items() for item in ("--set", f"{k}={json.dumps(v) if isinstance(v, list) else v}")]

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")


class Recorder:
    def __init__(self):
        self.steps, self.epochs = [], []

    def on_step(self, record):
        self.steps.append(dict(record))

    def on_epoch(self, record):
        self.epochs.append(dict(record))


def test_the_loop_calls_back_with_each_step_and_epoch_record():
    det = memad.build("mnad_pred", **SCALE)
    rec, epoch_only = Recorder(), type("E", (), {"on_epoch": lambda self, r: seen.append(r["epoch"])})()
    seen: list[int] = []
    det.fit("synthetic", callbacks=[rec, epoch_only])
    assert [s["step"] for s in rec.steps] == [1, 2, 3, 4, 5, 6] and [s["epoch"] for s in rec.steps] == [1] * 3 + [2] * 3
    # The loss terms: what an epoch record holds beyond its bookkeeping and the memory's health, which is
    # counted over the epoch's reads rather than averaged over its steps.
    terms = {t for t in det.history_[0] if t not in {"epoch", "lr", "seconds"}
             and not t.startswith(("effective_items", "dead_items"))}
    assert "loss" in terms and all(terms <= set(s) for s in rec.steps)
    assert all(0 < s["clips"] <= det.config["train"]["batch_size"] for s in rec.steps)
    for e in (1, 2):  # the epoch's mean of each term is the mean of its steps' values
        steps = [s for s in rec.steps if s["epoch"] == e]
        for term in terms:
            assert rec.epochs[e - 1][term] == pytest.approx(sum(s[term] for s in steps) / len(steps), rel=1e-5)
    assert rec.epochs == det.history_ and seen == [1, 2]


def _tensorboard(logdir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "tensors": 0, "images": 0})
    acc.Reload()
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    return acc, hparams


def _mlflow(folder: Path, experiment: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder.resolve() / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id], order_by=["attributes.run_name"])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_train_logs_to_tensorboard_and_mlflow(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "mnad_pred", "--data", "synthetic", "--out", str(out), "--eval", "--json",
                 "--logger", "tensorboard", "--logger", "mlflow", *SET])
    assert code == 0
    metrics = json.loads(capsys.readouterr().out)
    for key in ("rbdc", "tbdc", "frame_auroc_ci95", "frame_auroc_macro_pad", "event_recall", "false_alarms_per_1000",
                "delay_median", "delay_p90", "frame_auroc", "frame_auroc_macro", "pixel_auroc"):
        assert key in metrics
    history = json.loads((out / "history.json").read_text())

    acc, hparams = _tensorboard(out / "tensorboard" / "mnad_pred")
    losses = acc.Scalars("train/loss")
    assert [e.step for e in losses] == [1, 2, 3, 4, 5, 6]
    assert [e.value for e in acc.Scalars("epoch/loss")] == pytest.approx([h["loss"] for h in history], rel=1e-5)
    assert {"train/lr", "train/clips_per_second", "epoch/clips_per_second", "epoch/lr"} <= set(acc.Tags()["scalars"])
    assert acc.Scalars("eval/frame_auroc")[0].value == pytest.approx(metrics["frame_auroc"], rel=1e-5)
    assert acc.Scalars("eval/frame_auroc_ci95_low")[0].value == pytest.approx(metrics["frame_auroc_ci95"][0], rel=1e-5)
    assert hparams["data.image_size"].number_value == 32 and hparams["memory.name"].string_value == "mnad"
    assert hparams["encoder.widths"].string_value == "[8, 16, 32, 64]"
    assert "checkpoint/text_summary" in acc.Tags()["tensors"]

    client, (run,) = _mlflow(out, "run")
    assert run.info.run_name == "mnad_pred" and run.info.status == "FINISHED"
    assert run.data.params["data.image_size"] == "32" and run.data.params["train.epochs"] == "2"
    assert run.data.tags["preset"] == "mnad_pred" and run.data.tags["memad.checkpoint"] == str(out / "checkpoint.pt")
    steps = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.step for m in steps) == [1, 2, 3, 4, 5, 6]
    assert sorted(m.value for m in steps) == pytest.approx(sorted(e.value for e in losses), rel=1e-6)
    assert run.data.metrics["eval/frame_auroc"] == pytest.approx(metrics["frame_auroc"])
    assert run.data.metrics["eval/rbdc"] == pytest.approx(metrics["rbdc"])
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"config.yaml", "history.json"}


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_compare_logs_each_preset_and_seed_as_its_own_tagged_run(tmp_path):
    out = tmp_path / "cmp"
    memad.compare(["ae"], "synthetic", seeds=2, out=out, overrides=SCALE, progress=False,
                  loggers=["mlflow,tensorboard"])
    client, runs = _mlflow(out, "compare cmp")
    assert [r.info.run_name for r in runs] == ["ae/seed0", "ae/seed1"]
    assert [r.data.tags["seed_index"] for r in runs] == ["0", "1"] and {r.data.tags["preset"] for r in runs} == {"ae"}
    assert [r.data.params["train.seed"] for r in runs] == [str(int(runs[0].data.params["train.seed"]) + k)
                                                           for k in (0, 1)]
    for r in runs:
        saved = json.loads((out / "runs" / "ae" / f"seed{r.data.tags['seed_index']}" / "metrics.json").read_text())
        assert r.data.metrics["eval/frame_auroc"] == pytest.approx(saved["metrics"]["frame_auroc"])
        names = {a.path for a in client.list_artifacts(r.info.run_id)}
        assert {"history.json", "roc.png", "timelines.png", "top_frames_ae.png"} <= names
    acc, hparams = _tensorboard(out / "tensorboard" / "ae" / "seed1")
    assert len(acc.Scalars("train/loss")) == 6 and "artifacts/roc" in acc.Tags()["images"]
    # A rerun reuses the finished runs and logs nothing new.
    memad.compare(["ae"], "synthetic", seeds=2, out=out, overrides=SCALE, progress=False, loggers=["mlflow"])
    assert len(_mlflow(out, "compare cmp")[1]) == 2


def test_a_missing_package_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now fails
    with pytest.raises(ConfigError, match=r'pip install "memad\[tracking\]"'):
        resolve_loggers(["tensorboard", "mlflow"])
    code = main(["train", "ae", "--data", "synthetic", "--out", str(tmp_path / "x"), "--logger", "mlflow", *SET])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and 'pip install "memad[tracking]"' in err[0] and "--logger mlflow" in err[0]
    assert not (tmp_path / "x" / "checkpoint.pt").exists()  # refused before training


def test_an_unknown_logger_lists_the_registered_ones():
    with pytest.raises(ConfigError, match="tensorboard"):
        resolve_loggers(["tensorbord"])


def test_a_users_logger_is_one_more_plugin(tmp_path):
    received = []

    class ListLogger(Logger):
        """Keeps everything in a list."""

        def log_params(self, params):
            received.append(("params", self.run, self.tags["preset"], params["data.image_size"]))

        def log_metrics(self, metrics, step):
            received.append(("metrics", step, sorted(metrics)))

        def close(self, failed=False):
            received.append(("closed", failed))

    reg = get_registry()
    reg.add("logger", "list", ListLogger)
    try:
        det = memad.build("ae", **SCALE)
        with Tracking(["list"], tmp_path, "ae", tags={"preset": "ae"}) as tracking:
            tracking.log_config(det.config)
            det.fit("synthetic", callbacks=[tracking])
            tracking.log_final({"frame_auroc": 0.5, "frame_auroc_ci95": [0.4, 0.6], "mode": "batched"})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert "list" in memad.list_components("logger")
    finally:
        reg.unregister("logger", "list")
    assert received[0] == ("params", "ae", "ae", 32)
    assert any(r[0] == "metrics" and r[1] == 6 and {"train/loss", "train/lr"} <= set(r[2]) for r in received)
    assert ("metrics", 2, ["eval/frame_auroc", "eval/frame_auroc_ci95_high", "eval/frame_auroc_ci95_low"]) in received
    assert received[-1] == ("closed", False)
