"""The MLflow export's deadline on every call, with a fake client: no MLflow needed."""

from __future__ import annotations

import pytest

from job.tracking import mlflow as export


def test_a_server_that_trickles_is_stopped_by_the_call_deadline(tmp_path, monkeypatch):
    """A read timeout restarts with every byte: only a deadline on the whole call ends a trickling answer."""
    import time
    from types import SimpleNamespace

    from helpers import write_hand_run

    class Trickling:  # a client whose every call takes far longer than the deadline, as a trickling server does
        def __init__(self, tracking_uri):
            self.uri = tracking_uri

        def get_experiment_by_name(self, name):
            for _ in range(100):
                time.sleep(0.1)  # one byte now and then: never a timeout of its own
            raise AssertionError("the deadline did not stop the call")

    fake = SimpleNamespace(get_tracking_uri=lambda: "http://127.0.0.1:9")
    monkeypatch.setattr(export, "_import_mlflow", lambda log_level=None: (fake, Trickling))
    monkeypatch.setattr(export, "CALL_DEADLINE_S", 0.5)
    write_hand_run(tmp_path / "run")
    started = time.monotonic()
    with pytest.raises(export.ExportError, match="gave no useful answer within 0.5 s; check the server"):
        export.export_run(tmp_path / "run", "http://127.0.0.1:9")
    assert time.monotonic() - started < 5
