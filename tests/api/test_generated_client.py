"""An agency's developer generates a Python client from /v1/openapi.json with
openapi-python-client, and with it posts an alert and reads its deliveries:
no hand-written request, every answer parsed into the document's models."""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from capkit import answers_sms, placed

pytestmark = pytest.mark.e2e

GENERATOR = Path(sys.executable).parent / "openapi-python-client"
ALERT = {
    "event": "Heat wave",
    "severity": "Severe",
    "content": {"ko": {"headline": "폭염 경보", "body": "물을 자주 드세요."}},
    "audience": {"residents": ["g1"]},
}


def generate_client(spec: bytes, folder: Path):
    (folder / "openapi.json").write_bytes(spec)
    (folder / "config.yaml").write_text("post_hooks: []\n")  # no formatter needed to use the code
    subprocess.run([str(GENERATOR), "generate", "--path", "openapi.json", "--meta", "none", "--config",
                    "config.yaml", "--output-path", "gateway_client"], cwd=folder, check=True,
                   capture_output=True, timeout=300)
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module("gateway_client")
    finally:
        sys.path.remove(str(folder))


async def test_a_client_generated_from_the_document_posts_an_alert_and_reads_its_deliveries(city, tmp_path):
    await city.add(placed("g1", None, {"type": "phone", "number": "010-5550-0301", "handset": "feature_phone"}),
                   answers_sms("+821055500301"))
    async with city.http.get(f"{city.api}/v1/openapi.json") as r:
        client = await asyncio.to_thread(generate_client, await r.read(), tmp_path)
    from gateway_client.api.agency import get_delivery, list_deliveries, post_alert
    from gateway_client.models import PostAlertJsonBody

    api = client.AuthenticatedClient(base_url=city.api, token=city.key)
    accepted = await post_alert.asyncio(client=api, body=PostAlertJsonBody.from_dict(ALERT))
    assert accepted.status == "accepted" and accepted.id.startswith("al_")
    await city.settled(accepted.id)
    page = await list_deliveries.asyncio(accepted.id, client=api, limit=10)
    assert [(d.resident, d.state.value) for d in page.deliveries] == [("g1", "confirmed")]
    path = await get_delivery.asyncio(accepted.id, "g1", client=api)
    assert path.confirmed_by.channel == "sms" and path.attempts[0].statuses[-1].status
