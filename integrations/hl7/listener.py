"""The MLLP listener: python-hl7's asyncio server, one task per connection (docs/hl7.md).

Many senders at once, many messages per connection, each answered in turn once its change
has committed. The Django ORM is synchronous, so each message is handled in a worker thread
(`sync_to_async(thread_sensitive=False)`) while the event loop keeps serving the others.
Nothing a client sends or fails to send ends the listener: a bad block is answered AR, a
connection that breaks, idles past HL7_IDLE_SECONDS or overflows HL7_MAX_MESSAGE_BYTES is
closed, and an unexpected fault is logged and closes only that connection.
"""

import asyncio
import logging
from contextlib import suppress

from asgiref.sync import sync_to_async
from django.conf import settings
from hl7.mllp import InvalidBlockError, start_hl7_server

from integrations.hl7 import acks
from integrations.hl7.inbound import Lookups, receive_in_worker_thread
from integrations.hl7.reading import DATA_TYPE_ERROR, Hl7Problem

log = logging.getLogger("hl7")


async def serve(host, port):
    """Start listening; returns the asyncio Server (its sockets say the port when 0 was asked)."""
    return await start_hl7_server(handle_connection, host, port, limit=settings.HL7_MAX_MESSAGE_BYTES)


async def handle_connection(reader, writer):
    host, port = (writer.get_extra_info("peername") or ("?", "?"))[:2]
    peer = f"{host}:{port}"
    log.info("hl7.connected peer=%s", peer)
    lookups = Lookups()  # the codes this sender's messages name, looked up once (inbound.Lookups)
    try:
        while True:
            ack = await next_answer(reader, peer, lookups)
            if ack is None:
                break
            writer.writeblock(ack.encode("utf-8"))
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    except Exception:
        log.exception("hl7.connection_failed peer=%s", peer)
    finally:
        writer.close()
        with suppress(Exception):
            await writer.wait_closed()
        log.info("hl7.disconnected peer=%s", peer)


async def next_answer(reader, peer, lookups):
    """The answer to the next block, or None when the connection is to be closed."""
    try:
        block = await asyncio.wait_for(reader.readblock(), timeout=settings.HL7_IDLE_SECONDS)
    except InvalidBlockError:
        # Bytes before the start block: not a message; the sender resends a well-framed one.
        return acks.rejection_of_unreadable(
            Hl7Problem("The block did not begin with the MLLP start character (0x0B).", code=DATA_TYPE_ERROR)
        )
    except asyncio.IncompleteReadError as ended:
        if ended.partial.strip():
            log.info("hl7.cut_off peer=%s bytes=%s", peer, len(ended.partial))
        return None
    except TimeoutError:
        log.info("hl7.idle_closed peer=%s", peer)
        return None
    except ValueError:  # longer than HL7_MAX_MESSAGE_BYTES without an end block
        log.warning("hl7.too_long peer=%s", peer)
        return None
    return await sync_to_async(receive_in_worker_thread, thread_sensitive=False)(block, peer, lookups)
