from __future__ import annotations

import gc
import runpy
from pathlib import Path

from observability import gunicorn

DEPLOY_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "gunicorn.conf.py"


def test_the_loaded_heap_is_frozen_after_its_garbage_is_collected():
    cycle: list[object] = []
    cycle.append(cycle)  # garbage only the cyclic collector can free
    del cycle
    try:
        gunicorn.post_worker_init(worker=None)

        assert gc.get_freeze_count() > 0
        assert gc.garbage == []
        assert gc.collect() == 0, "start-up garbage was collected before the freeze"
    finally:
        gc.unfreeze()


def test_the_deployed_config_uses_both_hooks():
    config = runpy.run_path(str(DEPLOY_CONFIG))

    assert config["post_worker_init"] is gunicorn.post_worker_init
    assert config["child_exit"] is gunicorn.child_exit
