"""A watchdog for the django-q2 clusters: it restarts one that holds work and runs none.

A cluster's workers share one multiprocessing queue, and the worker waiting in its `get()`
holds the queue's read lock. A worker killed there (SIGKILL, the OOM killer) leaves the lock
held for good: the sentinel starts a new worker, but every worker then waits on the lock and
no job runs, while the broker still answers a ping (docs/operations.md, "When a process
dies"). Only a new cluster, with a new queue, recovers.

So `manage.py supervise_qcluster` runs `manage.py qcluster` as its child and, every
WATCHDOG_INTERVAL_SECONDS, puts a check job (`answer_probe`) on the cluster's own queue. A
worker stamps ClusterHeartbeat.last_finished_at when it finishes a job (at most once a
second); the check job stamps it at once. A cluster whose check job has waited
WATCHDOG_STALL_SECONDS while no job finished for as long is stalled: its processes are
killed and a new cluster starts in place. A cluster that exits is started again too. What
the killed jobs held is recovered as after any crash: their transactions roll back, and the
sweep hands a slot, a message or a delivery whose job was lost to a new job
(ops/sweep.py). After a restart, and whenever a process of the cluster dies (the
sentinel replaces a killed worker, but its job is gone), the supervisor enqueues
WATCHDOG_RECOVERY_JOB, which does that at once instead of after LOST_JOB_SECONDS.
"""

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.db.models import F
from django.db.models.functions import Now
from django_q.conf import Conf

from clinic.models import ClusterHeartbeat
from clinic.queue import enqueue, shared_broker

log = logging.getLogger("ops.watchdog")

PROBE_FUNC = "ops.watchdog.answer_probe"
# A worker writes its heartbeat at most this often: at a hundred jobs a second, one write.
HEARTBEAT_EVERY_SECONDS = 1.0
_last_heartbeat = 0.0  # per process (time.monotonic)


# Hosts sharing one broker share its queues: another host's cluster may take a check job,
# which then proves nothing about the cluster that was asked. It is passed on, this many times at most.
PROBE_HOPS = 20


def heartbeat_key(cluster=None):
    """The heartbeat row of a cluster on this host: the queue's name, and with HOST_NAME set
    (several hosts on one database and broker, docs/operations.md) "<queue>@<host>"."""
    cluster = cluster or Conf.CLUSTER_NAME
    return f"{cluster}@{settings.HOST_NAME}" if settings.HOST_NAME else cluster


def answer_probe(key, hops=0):
    """The check job: a worker of the cluster `key` names took it off the queue, so that cluster runs jobs.

    Taken by the same queue's cluster on another host, it goes back on the queue (it says
    nothing of the asking host's cluster), until the right one takes it or PROBE_HOPS runs out.
    """
    if key == heartbeat_key():
        ClusterHeartbeat.objects.filter(pk=key).update(last_finished_at=Now(), probe_sent_at=None)
    elif hops < PROBE_HOPS:
        enqueue(PROBE_FUNC, key, hops + 1, queue=Conf.CLUSTER_NAME, group="watchdog")


def job_finished(task):
    """A worker finished a job (django-q2's post_execute_in_worker): stamp its cluster's heartbeat."""
    global _last_heartbeat
    if task.get("func") == PROBE_FUNC:
        return
    now = time.monotonic()
    if now - _last_heartbeat < HEARTBEAT_EVERY_SECONDS:
        return
    _last_heartbeat = now
    try:
        ClusterHeartbeat.objects.filter(pk=heartbeat_key()).update(last_finished_at=Now())
    except DatabaseError:  # the job met the same database, and its own failure is recorded
        log.debug("[WATCHDOG] Could not stamp the heartbeat of %s", heartbeat_key(), exc_info=True)


def states():
    """Every watched cluster's row, with the database's time now as `db_now`."""
    return list(ClusterHeartbeat.objects.annotate(db_now=Now()).order_by("cluster"))


def state_of(cluster):
    return ClusterHeartbeat.objects.annotate(db_now=Now()).filter(pk=cluster).first()


def stall_reason(state, stall_seconds=None):
    """Why the cluster counts as stalled, in a sentence, or "" while it makes progress.

    Stalled: its check job has waited `stall_seconds` and no job finished for as long, so a
    backlog that keeps the workers busy is not a stall, nor is a quiet queue.
    """
    stall_seconds = settings.WATCHDOG_STALL_SECONDS if stall_seconds is None else stall_seconds
    if state.probe_sent_at is None:
        return ""
    waited = (state.db_now - state.probe_sent_at).total_seconds()
    since = max((t for t in (state.last_finished_at, state.started_at) if t), default=state.probe_sent_at)
    idle = (state.db_now - since).total_seconds()
    if waited < stall_seconds or idle < stall_seconds:
        return ""
    return f"no job finished for {idle:.0f} s while a job waited {waited:.0f} s"


# --- The supervisor (manage.py supervise_qcluster) ------------------------------------------


def processes():
    """{pid: (parent, state)} of every process on the machine, from /proc."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # it exited while we looked
            continue
        fields = text[text.rindex(")") + 2 :].split()
        found[int(stat.parent.name)] = (int(fields[1]), fields[0])
    return found


def descendants(pid):
    """Every process below `pid` (with this process a subreaper, orphans stay below it)."""
    children = {}
    for child, (parent, _) in processes().items():
        children.setdefault(parent, []).append(child)
    below, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            below.append(child)
            todo.append(child)
    return below


def become_subreaper():
    """Orphans of the cluster (a sentinel whose parent died) become this process's children.

    So a restart finds and kills every process the old cluster left, and the supervisor's
    own process group (bin/serve's kill) still holds them all. Linux only; elsewhere a
    killed cluster's orphans are reaped by init.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


class Supervisor:
    """Runs one `manage.py qcluster` and starts a new one when it stalls or exits."""

    # A cluster that exits this many times in a row within QUICK_EXIT_SECONDS of starting
    # is not going to run (a broken setting, no database): give up and let bin/serve fail.
    QUICK_EXITS = 5
    QUICK_EXIT_SECONDS = 30

    def __init__(self, cluster=None, interval=None, stall=None, stop_seconds=20):
        self.cluster = cluster or Conf.CLUSTER_NAME
        self.key = heartbeat_key(self.cluster)  # this host's row for it
        self.interval = settings.WATCHDOG_INTERVAL_SECONDS if interval is None else interval
        self.stall = settings.WATCHDOG_STALL_SECONDS if stall is None else stall
        self.stop_seconds = stop_seconds
        self.command = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "qcluster"]
        self.child = None
        self.started = 0.0
        self.processes = set()
        self.stopping = False
        self.said = set()

    def run(self):
        become_subreaper()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.stop_requested)
        with contextlib.suppress(DatabaseError):
            self.record(started_at=Now(), probe_sent_at=None)
        self.start_cluster()
        quick_exits = 0
        while self.pause(self.interval):
            self.reap_orphans()
            code = self.child.poll()
            if code is not None and not self.broker_answers():
                continue  # a new cluster would stop at once (it pings the broker first); wait for it
            if code is not None:
                quick = time.monotonic() - self.started < self.QUICK_EXIT_SECONDS
                quick_exits = quick_exits + 1 if quick else 0
                if quick_exits >= self.QUICK_EXITS:
                    log.error(
                        "[WATCHDOG] The %s cluster exited %s times in a row; giving up", self.cluster, quick_exits
                    )
                    self.kill_cluster()
                    return 1
                self.restart(f"it exited with status {code}")
                continue
            reason = self.check()
            if reason:
                self.restart(reason)
                continue
            self.notice_deaths()
        self.stop_cluster()
        return 0

    def notice_deaths(self):
        """A process of the cluster died (the sentinel replaced it): the job it ran is lost."""
        alive = set(descendants(os.getpid()))
        gone = self.processes - alive
        self.processes = alive
        if gone:
            log.warning("[WATCHDOG] A process of the %s cluster ended (%s)", self.cluster, ", ".join(map(str, gone)))
            self.recover_lost_jobs()

    def recover_lost_jobs(self):
        """Hand what the dead processes held to new jobs now, not after LOST_JOB_SECONDS.

        A worker recycled after Q_RECYCLE jobs also counts: one sweep too many costs little.
        """
        if not settings.WATCHDOG_RECOVERY_JOB or not self.broker_answers():
            return  # with the broker down, the sweep's own schedule catches up once it is back
        try:
            enqueue(settings.WATCHDOG_RECOVERY_JOB, group="watchdog")
        except Exception:
            log.warning("[WATCHDOG] Could not enqueue %s", settings.WATCHDOG_RECOVERY_JOB, exc_info=True)

    def stop_requested(self, signum, frame):
        self.stopping = True

    def pause(self, seconds):
        """Sleep, in short steps so a SIGTERM is seen at once; False once asked to stop."""
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        return not self.stopping

    def check(self):
        """One look at the cluster: the reason it is stalled, or "" (and a new check job sent)."""
        close_old_connections()  # each look is a "request": a dead connection is replaced
        if not self.broker_answers():
            return ""
        try:
            state = state_of(self.key)
            if state is None:  # the row was deleted under us (a test's flush): start over
                self.record(started_at=Now(), probe_sent_at=None)
                return ""
            reason = stall_reason(state, self.stall)
            if not reason and state.probe_sent_at is None:
                self.send_probe()
            self.say_once("database", "")
            return reason
        except DatabaseError as error:
            # A database outage stops every job, and a new cluster would not help.
            self.say_once("database", f"cannot read the database ({error}); not judging the cluster")
            return ""

    def broker_answers(self):
        """A broker outage stops every job, and a new cluster would not help: no judging then."""
        try:
            shared_broker(self.cluster).ping()
        except Exception as error:
            self.say_once("broker", f"cannot reach the broker ({type(error).__name__}); jobs wait until it is back")
            return False
        if "broker" in self.said:
            self.say_once("broker", "")
            # A check job sent before the outage may have been lost with the broker's queue.
            with contextlib.suppress(DatabaseError):
                ClusterHeartbeat.objects.filter(pk=self.key).update(probe_sent_at=None)
        return True

    def send_probe(self):
        ClusterHeartbeat.objects.filter(pk=self.key).update(probe_sent_at=Now())
        try:
            enqueue(PROBE_FUNC, self.key, queue=self.cluster, group="watchdog")
        except Exception as error:  # the broker is down: nothing runs, and a restart would not help
            ClusterHeartbeat.objects.filter(pk=self.key).update(probe_sent_at=None)
            self.say_once("broker", f"cannot reach the broker ({type(error).__name__}); jobs wait until it is back")
        else:
            self.say_once("broker", "")

    def say_once(self, topic, problem):
        """Log a problem when it starts and when it ends, not at every look."""
        if problem and topic not in self.said:
            self.said.add(topic)
            log.warning("[WATCHDOG] %s cluster: %s", self.cluster, problem)
        elif not problem and topic in self.said:
            self.said.discard(topic)
            log.warning("[WATCHDOG] %s cluster: the %s answers again", self.cluster, topic)

    def restart(self, reason):
        log.critical("[WATCHDOG] Restarting the %s cluster: %s", self.cluster, reason)
        self.kill_cluster()
        with contextlib.suppress(DatabaseError):
            self.record(
                started_at=Now(),
                probe_sent_at=None,
                restarts=F("restarts") + 1,
                last_restart_at=Now(),
                last_restart_reason=reason[:200],
            )
        self.start_cluster()
        self.recover_lost_jobs()

    def record(self, **fields):
        ClusterHeartbeat.objects.get_or_create(pk=self.key)
        ClusterHeartbeat.objects.filter(pk=self.key).update(**fields)

    def start_cluster(self):
        self.child = subprocess.Popen(self.command, cwd=settings.BASE_DIR)
        self.started = time.monotonic()
        self.processes = set()  # its processes, seen at the next look

    def kill_cluster(self):
        """SIGKILL the cluster's every process at once: a stalled cluster would not stop when asked."""
        for pid in [self.child.pid, *descendants(os.getpid())]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.child.wait()
        self.reap_orphans()

    def stop_cluster(self):
        """On SIGTERM: ask the cluster to stop, as bin/serve asks, and kill what is left after stop_seconds."""
        if self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.child.wait(timeout=self.stop_seconds)
        self.kill_cluster()

    def reap_orphans(self):
        """Collect exited orphans the kernel handed to this subreaper (the child itself is Popen's)."""
        for pid, (parent, state) in processes().items():
            if parent == os.getpid() and state == "Z" and pid != self.child.pid:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
