"""The MLLP listener over real loopback sockets, with python-hl7's own client: many senders,
many messages per connection, and clients that misbehave without stopping it."""

import asyncio
import socket
import threading

import pytest
from django.db import OperationalError
from hl7.mllp import open_hl7_connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import integrations.hl7.inbound as inbound
from integrations.hl7.models import Hl7Message
from scheduling.models import Appointment
from tests.hl7_feed import ack_fields, ehr_clinic, exchange, running_listener, sample

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def listener():
    ehr_clinic()
    with running_listener() as port:
        yield port


def s12(n):
    """The n-th new appointment of a feed: its own control id, appointment id and hour."""
    return sample(
        "siu_s12",
        {
            "MSH.10": f"FEED{n}",
            "SCH.2": f"FL{n}",
            "SCH.11": "",
            "AIS.4": f"203001{10 + n // 8:02d}{8 + n % 8:02d}0000-0500",
        },
    )


def test_each_message_on_one_connection_is_acknowledged_in_turn(listener):
    answers = exchange(listener, s12(0), s12(1), sample("siu_s15", {"SCH.2": "FL0", "MSH.10": "FEED2"}))

    assert [ack_fields(answer)[:2] for answer in answers] == [("AA", "FEED0"), ("AA", "FEED1"), ("AA", "FEED2")]
    assert Appointment.objects.get(external_id="FL0").status == Appointment.Status.CANCELLED
    assert Appointment.objects.get(external_id="FL1").status == Appointment.Status.SCHEDULED


def test_several_senders_at_once_are_all_answered(listener):
    results = {}

    def sender(n):
        results[n] = exchange(listener, s12(n), s12(n + 10))

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(ack_fields(answer)[0] for pair in results.values() for answer in pair) == ["AA"] * 8
    assert Appointment.objects.filter(external_id__startswith="FL").count() == 8


def test_a_resent_message_gets_the_same_ack_over_the_wire(listener):
    first, again = exchange(listener, s12(0), s12(0))

    assert again == first
    assert Appointment.objects.count() == 1


def raw_connection(port):
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def test_a_client_that_disconnects_mid_message_changes_nothing_and_others_go_on(listener):
    with raw_connection(listener) as cut_off:
        cut_off.sendall(b"\x0b" + s12(0).encode()[:80])

    assert ack_fields(exchange(listener, s12(1))[0])[0] == "AA"
    assert not Appointment.objects.filter(external_id="FL0").exists()


def test_garbage_outside_a_block_is_rejected_and_the_connection_goes_on(listener):
    with raw_connection(listener) as client:
        client.sendall(b"GET / HTTP/1.1\r\n\r\n\x1c\r")
        rejected = client.recv(4096)
        client.sendall(b"\x0b" + s12(0).encode() + b"\x1c\r")
        accepted = client.recv(4096)

    assert ack_fields(rejected.strip(b"\x0b\x1c\r").decode())[0] == "AR"
    assert ack_fields(accepted.strip(b"\x0b\x1c\r").decode())[:2] == ("AA", "FEED0")


def test_an_idle_client_is_closed_and_does_not_hold_others_up(listener, settings):
    settings.HL7_IDLE_SECONDS = 0.3
    with raw_connection(listener) as idle:
        assert ack_fields(exchange(listener, s12(0))[0])[0] == "AA"
        idle.settimeout(5)
        assert idle.recv(10) == b""  # closed by the listener


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    garbage=st.one_of(
        st.binary(max_size=300).filter(lambda b: b"\x1c\r" not in b),
        st.text(alphabet="MSH|^~\\&PIDSCHAIS0123456789\r -.", max_size=300).map(str.encode),
        st.lists(st.sampled_from(["|", "^", "~", "\\", "&", "SCH", "PID", "\r", "2.5.1", "SIU", "S12", "X"])).map(
            lambda parts: ("MSH|^~\\&|" + "".join(parts)).encode()
        ),
    )
)
def test_malformed_messages_get_ar_or_ae_and_never_stop_the_listener(listener, garbage):
    with raw_connection(listener) as client:
        client.sendall(b"\x0b" + garbage + b"\x1c\r")
        answer = b""
        while not answer.endswith(b"\x1c\r"):
            chunk = client.recv(65536)
            assert chunk, "the listener closed the connection without an answer"
            answer += chunk

    assert ack_fields(answer.strip(b"\x0b\x1c\r").decode())[0] in ("AR", "AE")
    assert ack_fields(exchange(listener, s12(0))[0])[0] == "AA"  # still serving


def test_nothing_is_acknowledged_while_the_database_is_unreachable(listener, monkeypatch):
    def database_down(text, peer):
        raise OperationalError("connection refused")

    monkeypatch.setattr(inbound, "answer", database_down)

    async def talk():
        reader, writer = await open_hl7_connection("127.0.0.1", listener)
        writer.writeblock(s12(0).encode())
        await writer.drain()
        try:
            return await asyncio.wait_for(reader.readblock(), 5)
        except asyncio.IncompleteReadError:
            return None
        finally:
            writer.close()

    assert asyncio.run(talk()) is None  # closed unanswered: the sender sends it again
    assert not Hl7Message.objects.exists()
