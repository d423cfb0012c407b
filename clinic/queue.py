"""Putting jobs on django-q2's queue through one broker per process.

Given no broker, django-q2's `async_task` builds a new one for every job; on Redis that is
a new connection per job, which cost more CPU than the rest of the enqueue (profiled with
`bench/workload.py --profile`). redis-py's pool notices a fork and reconnects in the child,
so one broker per process is safe for the web server and the cluster's workers alike.
"""

import functools
from datetime import timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, connections
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.tasks import async_task

from clinic.models import PendingJob


class OrmBroker(ORM):
    """django-q2's ORM broker, which reconnects once when its kept connection has died.

    The cluster's pusher polls this broker in a loop that never closes its connection, as a
    request or a job would. After a PostgreSQL restart its next poll fails, and django-q2's
    pusher then sleeps 10 s before the sentinel replaces it: every job would wait that long.
    (settings.Q_CLUSTER["broker_class"] names it whenever the ORM broker is used.)
    """

    def dequeue(self):
        try:
            return super().dequeue()
        except (InterfaceError, OperationalError):
            connections[Conf.ORM].close()
            return super().dequeue()


@functools.cache
def shared_broker(queue=None):
    return get_broker(queue or settings.Q_CLUSTER["name"])


def enqueue(func, *args, queue=None, **options):
    """Put a job on `queue`: the main cluster's unless named (settings.WEBHOOK_QUEUE).

    Named always, never django-q2's default: in the webhooks' own cluster that default is
    the webhooks queue, and a job enqueued there would wait behind deliveries.
    """
    return async_task(func, *args, broker=shared_broker(queue), **options)


def enqueue_unless_pending(name, func, expires_after, **options):
    """Enqueue a job that takes no arguments, unless one asked for under `name` has not started yet.

    For jobs that drain a backlog (the outbox): a hundred requests in a second need one or
    two runs, not a hundred. The job calls `started(name)` before it reads the backlog, so
    whatever is committed after that asks for a new run. A mark older than `expires_after`
    seconds is taken for a lost run and replaced; the sweep also catches up on what a lost
    run left behind. The mark is a row (PendingJob), so it works on every broker.
    """
    now = timezone.now()
    quote = connection.ops.quote_name
    table = quote(PendingJob._meta.db_table)
    # One statement: insert the mark, or renew it if it is stale; a row comes back only then.
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({quote('name')}, {quote('requested_at')}) VALUES (%s, %s) "
            f"ON CONFLICT ({quote('name')}) DO UPDATE SET {quote('requested_at')} = excluded.{quote('requested_at')} "
            f"WHERE {table}.{quote('requested_at')} < %s RETURNING {quote('name')}",
            [name, now, now - timedelta(seconds=expires_after)],
        )
        if cursor.fetchone() is None:
            return None
    try:
        return enqueue(func, **options)
    except Exception:
        # Not queued (the broker is down): without its mark gone, every request until the
        # mark went stale would be taken for already asked, and nothing would be queued.
        started(name)
        raise


def started(name):
    PendingJob.objects.filter(name=name).delete()
