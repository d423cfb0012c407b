"""A stand-in EHR for the HL7 tests: sample messages from tests/data/hl7, the clinic they
name, python-hl7's own MLLP client, and Backfill's listener on a loopback port in a thread."""

import asyncio
import threading
from contextlib import contextmanager
from pathlib import Path

import hl7
from hl7.mllp import open_hl7_connection, start_hl7_server

from clinic.factories import LocationFactory, ProviderFactory, SpecialtyFactory
from integrations.hl7.listener import serve
from integrations.hl7.reading import value

DATA = Path(__file__).resolve().parent / "data" / "hl7"


def sample(name, fields=None):
    """The sample `name` as sent on the wire (segments ended by CR), with `fields` set, e.g.
    {"MSH.10": "MSG9", "AIS.4": "20300110110000-0500"}."""
    message = hl7.parse("\r".join((DATA / f"{name}.hl7").read_text().splitlines()))
    for key, text in (fields or {}).items():
        message[key] = text
    return str(message)


def ehr_clinic():
    """The location, specialty and provider the samples name (DT, ORTHO, P100)."""
    location = LocationFactory(name="Downtown", external_id="DT", time_zone="America/New_York")
    specialty = SpecialtyFactory(name="Orthopedic PT", external_id="ORTHO")
    provider = ProviderFactory(name="Dr. Monica Jablonski", specialty=specialty, location=location, external_id="P100")
    return location, specialty, provider


def ack_fields(ack_text):
    """(MSA-1, MSA-2, ERR-2, ERR-3.1) of an acknowledgement."""
    ack = hl7.parse(ack_text)
    where = "-".join(part for part in (value(ack, "ERR", 2, 1, 1), value(ack, "ERR", 2, 1, 3)) if part)
    return value(ack, "MSA", 1), value(ack, "MSA", 2), where, value(ack, "ERR", 3, 1, 1)


async def _talk(port, blocks, timeout):
    reader, writer = await open_hl7_connection("127.0.0.1", port)
    answers = []
    try:
        for block in blocks:
            writer.writeblock(block.encode("utf-8"))
            await writer.drain()
            answers.append(str(await asyncio.wait_for(reader.readmessage(), timeout)))
    finally:
        writer.close()
        await writer.wait_closed()
    return answers


def exchange(port, *messages, timeout=15):
    """Send the messages over one MLLP connection, each after the previous one's answer; the answers."""
    return asyncio.run(_talk(port, messages, timeout))


@contextmanager
def serving(start):
    """An asyncio server made by `start()` (a coroutine), in a thread with its own event loop;
    yields the port it listens on."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box = {}

    def run():
        asyncio.set_event_loop(loop)
        box["server"] = loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True, name="hl7-server")
    thread.start()
    assert ready.wait(10), "the server did not start"
    server = box["server"]
    try:
        yield server.sockets[0].getsockname()[1]
    finally:

        async def stop():
            server.close()
            await server.wait_closed()
            await loop.shutdown_default_executor()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@contextmanager
def running_listener():
    """Backfill's MLLP listener on a free loopback port."""
    with serving(lambda: serve("127.0.0.1", 0)) as port:
        yield port


class StandInEhr:
    """The EHR's inbound interface: keeps what Backfill sends and answers each with the next of
    `next_answers` while any are left, then with `answer` (AA); "drop" closes the connection
    without an answer."""

    def __init__(self):
        self.received = []
        self.answer = "AA"
        self.next_answers = []
        self.port = None

    async def handle(self, reader, writer):
        try:
            while True:
                message = await reader.readmessage()
                self.received.append(str(message))
                answer = self.next_answers.pop(0) if self.next_answers else self.answer
                if answer == "drop":
                    break
                writer.writemessage(message.create_ack(answer))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def triggers(self):
        """The SIU events received, in order (e.g. ["S12", "S12", "S15"])."""
        return [value(message, "MSH", 9, 1, 2) for message in self.messages()]

    def messages(self, trigger=None):
        parsed = [hl7.parse(text) for text in self.received]
        return [m for m in parsed if trigger is None or value(m, "MSH", 9, 1, 2) == trigger]


@contextmanager
def stand_in_ehr():
    ehr = StandInEhr()
    with serving(lambda: start_hl7_server(ehr.handle, "127.0.0.1", 0)) as port:
        ehr.port = port
        yield ehr
