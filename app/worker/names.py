"""Queue and task names: plain constants, importable without Celery (web app, metrics, health, tests)."""

from __future__ import annotations

QUEUE_NAME = "postcall"

TASK_PROCESS_CALL = "postcall.process_call"
TASK_RECONCILE = "postcall.reconcile"
TASK_DELIVER_WEBHOOK = "postcall.deliver_webhook"
TASK_SWEEP_WEBHOOKS = "postcall.sweep_webhooks"
TASK_PURGE = "postcall.purge"
TASK_BATCH_COLLECT = "postcall.batch_collect"
TASK_BATCH_POLL = "postcall.batch_poll"
TASK_FOLD_ROLLUPS = "postcall.fold_rollups"

# kombu's Redis transport keeps delivered, not yet acknowledged messages in this hash.
KOMBU_UNACKED_KEY = "unacked"
