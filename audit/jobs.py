"""Every django-q2 task runs as "job: <function>" in the trail, whoever enqueued it."""

import threading

from audit import context

_open = threading.local()


def job_started(sender, func, task, **kwargs):
    name = getattr(func, "__qualname__", None) or str(task.get("func", "task"))
    module = getattr(func, "__module__", "")
    label = f"job: {module}.{name}" if module else f"job: {name}"
    _stack().append(context.begin(label, context.Channel.JOB))


def job_finished(sender, func, task, **kwargs):
    if _stack():
        context.end(_stack().pop())


def _stack():
    if not hasattr(_open, "tokens"):
        _open.tokens = []
    return _open.tokens
