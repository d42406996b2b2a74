"""Hand-off: the transactional outbox, the `postcall.call.v1` record, signed webhook delivery, the event feed.

Events are written by the pipeline and the review functions in the transaction of the change they report
(`record_event`). Delivery runs in the workers; the feed answers `GET /api/events`. This package never
imports `app.worker`, `app.web` or `app.cli`.
"""
