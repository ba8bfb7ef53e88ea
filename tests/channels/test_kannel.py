"""What Kannel's delivery reports mean for a resident's attempt."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from channels.kannel import Kannel, read_report, receipt_fields
from gateway.config import Settings

RECEIPT = "id:10577090037 sub:001 dlvrd:000 submit date:2611210930 done date:2611210931 stat:{stat} err:{err} text:Heat"


def report(kind: int, stat: str = "", err: str = ""):
    return read_report(kind, RECEIPT.format(stat=stat, err=err) if stat else "", "10577090037")


def test_a_receipt_is_read_field_by_field_even_with_spaces_in_names():
    fields = receipt_fields(RECEIPT.format(stat="DELIVRD", err="000"))
    assert fields["id"] == "10577090037" and fields["submit date"] == "2611210930" and fields["stat"] == "DELIVRD"


def test_the_smsc_taking_the_message_is_sent_and_the_handset_taking_it_is_delivered():
    assert report(8).status == "sent"
    delivered = report(1, "DELIVRD", "000")
    assert delivered.status == "delivered" and delivered.foreign_id == "10577090037"


def test_a_handset_switched_off_is_worth_another_try_and_blames_nobody():
    r = report(2, "UNDELIV", "027")
    assert (r.status, r.permanent, r.contact_dead, r.provider_fault) == ("failed", False, False, False)


def test_an_unknown_subscriber_is_a_dead_number():
    r = report(2, "UNDELIV", "001")
    assert r.permanent and r.contact_dead and not r.provider_fault


def test_a_network_failure_blames_the_provider():
    assert report(2, "UNDELIV", "069").provider_fault
    expired = report(2, "EXPIRED", "000")
    assert expired.provider_fault and not expired.permanent


def test_an_smsc_refusal_blames_the_provider_unless_the_number_is_bad():
    throttled = read_report(16, "NACK/0x00000058/Throttling error")
    assert throttled.status == "failed" and throttled.provider_fault and not throttled.permanent
    assert throttled.error_code == "smpp:0x00000058"
    bad = read_report(16, "NACK/0x0000000b/Invalid Destination Address")
    assert bad.permanent and bad.contact_dead and not bad.provider_fault


def test_buffered_says_nothing_new():
    assert read_report(4, "") is None


@pytest.fixture
def kannel(tmp_path):
    settings = Settings.from_env({"GATEWAY_DATA_DIR": str(tmp_path), "GATEWAY_PUBLIC_URL": "https://gw.example",
                                  "KANNEL_SENDSMS_URL": "http://kannel:13013/cgi-bin/sendsms",
                                  "KANNEL_USERNAME": "gateway"})
    return Kannel(settings)


def test_a_report_url_kannel_fills_in_is_accepted_and_a_forged_one_refused(kannel):
    url = kannel.dlr_url("al_1/r1/0/0/0", 1_800_000_000_000)
    filled = url.replace("%d", "1").replace("%F", "42").replace("%i", "sim").replace("%A", "x")
    parts = urlsplit(filled)
    request = make_mocked_request("GET", f"{parts.path}?{parts.query}")
    kannel.verify(request, request.query["t"])
    forged = make_mocked_request("GET", f"/hooks/kannel/dlr/al_1/r2/0/0/0?{parts.query}")
    with pytest.raises(web.HTTPForbidden):
        kannel.verify(forged, forged.query["t"])


def test_the_inbound_url_for_kannels_config_is_signed(kannel):
    parts = urlsplit(kannel.inbound_url())
    assert parts.path == "/hooks/kannel/inbound" and "from=%p" in parts.query and "text=%a" in parts.query
    kannel.verify(make_mocked_request("GET", f"{parts.path}?{parts.query}"))
