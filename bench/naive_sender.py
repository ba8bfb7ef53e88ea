"""The usual tutorial pattern, for comparison: one Celery task per message,
the synchronous twilio client.  Used by bench/fanout.py.

    python naive_sender.py N     # enqueue N tasks, wait, print messages/s
"""

from __future__ import annotations

import os
import sys
import time

import redis
from celery import Celery
from twilio.rest import Client

app = Celery("naive_sender", broker=os.environ.get("NAIVE_BROKER", "redis://127.0.0.1:6379/2"))
app.conf.update(task_ignore_result=True, worker_prefetch_multiplier=4)
_client = None
_counter = None


def twilio() -> Client:
    global _client
    if _client is None:
        _client = Client(os.environ["TWILIO_ACCOUNT_SID"], os.environ["TWILIO_AUTH_TOKEN"])
        _client.api.base_url = os.environ["TWILIO_API_BASE"]
    return _client


def counter() -> redis.Redis:
    """Counts sends; kept per process so the count costs the naive sender little."""
    global _counter
    if _counter is None:
        url = os.environ.get("NAIVE_REDIS", "redis://127.0.0.1:6379/2")
        _counter = redis.Redis(unix_socket_path=url[len("unix://"):]) if url.startswith("unix://") else redis.from_url(url)
    return _counter


@app.task(name="naive.send_sms")
def send_sms(to: str, body: str) -> None:
    # Delivery receipts asked for, as any sender that tracks delivery does (the bench's simulator loses them).
    twilio().messages.create(to=to, from_="+15005550006", body=body, status_callback="http://127.0.0.1:9/status")
    counter().incr("naive:sent")


if __name__ == "__main__":
    n = int(sys.argv[1])
    r = counter()
    r.delete("naive:sent")
    began = time.perf_counter()
    for i in range(n):
        send_sms.delay(f"+82105{i:07d}", "폭염 경보: 오늘 낮 기온이 38도까지 오릅니다.")
    while int(r.get("naive:sent") or 0) < n:
        time.sleep(0.05)
    print(n / (time.perf_counter() - began))
