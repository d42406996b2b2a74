"""The test receiver's record of what it accepted is complete by the time the sender has read the answer:
tests look right after a synchronous delivery returns."""

from __future__ import annotations

import threading

import httpx

from tests.support.receiver import Received, Reply, running_receiver


def _busy(stop: threading.Event) -> None:
    # Another Python thread competing for the interpreter, as in a loaded test run: the receiver's thread
    # may be switched out right after it has written its answer.
    while not stop.is_set():
        sum(range(2_000))


def test_an_answered_request_is_recorded_as_accepted_before_the_sender_reads_the_answer() -> None:
    stop = threading.Event()
    competitor = threading.Thread(target=_busy, args=(stop,), daemon=True)
    competitor.start()
    try:
        with running_receiver() as receiver, httpx.Client() as client:
            for number in range(200):
                answer = client.post(receiver.url, content=b"{}", headers={"webhook-id": f"msg_{number}"})
                assert answer.status_code == 200
                assert len(receiver.accepted_requests()) == number + 1
    finally:
        stop.set()
        competitor.join()


def test_a_refused_request_is_received_but_not_accepted() -> None:
    def refuse(_request: Received, _seen: int) -> Reply:
        return Reply(status=503, retry_after="1")

    with running_receiver(refuse) as receiver, httpx.Client() as client:
        answer = client.post(receiver.url, content=b"{}", headers={"webhook-id": "msg_refused"})
        assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
        assert [r.webhook_id for r in receiver.all_requests()] == ["msg_refused"]
        assert receiver.accepted_requests() == []
