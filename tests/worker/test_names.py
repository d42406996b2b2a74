"""Queue and task names come from a module that imports nothing: the web app, metrics and health checks
read them without loading Celery (whose app configures itself from Settings at import)."""

from __future__ import annotations

import subprocess
import sys

from app.config import PROJECT_ROOT
from app.worker import names

PROBE = """
import sys
from app.config import Settings
from app.health import check_broker
import app.metrics, app.web.app, app.worker.names
check = check_broker(Settings(broker_url="redis://127.0.0.1:1/0"))
assert not check.ok, check
print(sorted(m for m in sys.modules if m == "celery" or m.startswith(("celery.", "app.worker.celery_app"))))
"""


def test_web_metrics_and_health_never_load_celery() -> None:
    probe = subprocess.run([sys.executable, "-c", PROBE], cwd=PROJECT_ROOT, capture_output=True, text=True,
                           timeout=60, check=False)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "[]"


def test_the_celery_app_runs_the_named_tasks_on_the_named_queue() -> None:
    import app.worker.tasks  # registers the tasks, as a worker does
    import app.worker.webhooks  # noqa: F401
    from app.config import Settings
    from app.worker.celery_app import celery_app, create_celery

    task_names = {value for key, value in vars(names).items() if key.startswith("TASK_")}
    assert task_names <= set(celery_app.tasks)
    built = create_celery(Settings(broker_url="redis://127.0.0.1:1/5", broker_visibility_timeout=60))
    assert built.conf.broker_url == "redis://127.0.0.1:1/5"
    assert built.conf.task_default_queue == names.QUEUE_NAME
    assert built.conf.broker_transport_options["visibility_timeout"] == 60
