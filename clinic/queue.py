"""Putting jobs on django-q2's queue through one broker per process.

Given no broker, django-q2's `async_task` builds a new one for every job; on Redis that is
a new connection per job, which cost more CPU than the rest of the enqueue (profiled with
`bench/workload.py --profile`). redis-py's pool notices a fork and reconnects in the child,
so one broker per process is safe for the web server and the cluster's workers alike.
"""

import functools

from django_q.brokers import get_broker
from django_q.brokers.redis_broker import Redis
from django_q.tasks import async_task


@functools.cache
def shared_broker():
    return get_broker()


def enqueue(func, *args, **options):
    return async_task(func, *args, broker=shared_broker(), **options)


def enqueue_unless_pending(key, func, expires_after, **options):
    """Enqueue a job that takes no arguments, unless one asked for under `key` has not started yet.

    For jobs that drain a backlog (the outbox): a hundred requests in a second need one or
    two runs, not a hundred. The job calls `started(key)` before it reads the backlog, so
    whatever is committed after that asks for a new run. A lost run blocks new ones for at
    most `expires_after` seconds, and the sweep catches up on what it left behind. Only the
    Redis broker can hold the mark; on other brokers every request enqueues a run.
    """
    broker = shared_broker()
    if isinstance(broker, Redis) and not broker.connection.set(_pending_key(broker, key), 1, nx=True, ex=expires_after):
        return None
    return enqueue(func, **options)


def started(key):
    broker = shared_broker()
    if isinstance(broker, Redis):
        broker.connection.delete(_pending_key(broker, key))


def _pending_key(broker, key):
    return f"{broker.list_key}:pending:{key}"
