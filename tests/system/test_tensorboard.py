"""TensorBoard scalars per epoch, read back with tbparse, match history.csv."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import run_job

pytestmark = pytest.mark.slow  # trains
tbparse = pytest.importorskip("tbparse")


def test_tensorboard_events_match_history_csv(tmp_path):
    proc = run_job("run", "--tensorboard", "--sample", "1000", "--epochs", "2", "--models", "1,2", "--repeats", "2",
                   "--out", str(tmp_path))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir() and p.name != "tensorboard"]
    live = tmp_path / "tensorboard" / run_dir.name  # the stable, live location
    assert sorted(p.relative_to(live).as_posix() for p in live.glob("*/*")) == [
        "model_1/seed-42", "model_1/seed-43", "model_2/seed-42", "model_2/seed-43"
    ]  # fmt: skip
    events = tbparse.SummaryReader(str(run_dir / "tensorboard"), extra_columns={"dir_name"}).scalars
    history = pd.read_csv(run_dir / "history.csv")
    slugs = {"Model 1": "model_1", "Model 2": "model_2"}
    checked = 0
    for _, row in history.iterrows():
        training = events["dir_name"] == f"{slugs[row['model']]}/seed-{row['seed']}"
        where = events[training & (events["step"] == row["epoch"])]
        for tag in ("loss", "accuracy", "val_loss", "val_accuracy"):
            (value,) = where.loc[where["tag"] == tag, "value"]
            assert value == pytest.approx(row[tag], rel=1e-5), (row["model"], row["seed"], tag)
            checked += 1
        (lr,) = where.loc[where["tag"] == "learning_rate", "value"]
        assert lr == pytest.approx(0.001)
    assert checked == len(history) * 4 == 32
