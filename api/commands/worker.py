"""`flask --app api worker QUEUE…` and `flask --app api clock`: RQ workers and the sweeper, in an app context."""
import logging
import time

import click
from flask.cli import with_appcontext

from rq import SimpleWorker
from rq.serializers import JSONSerializer

from api.extensions import db, redis_client
from workers.jobs import sweep
from workers.queues import QUEUES, queue


def build_worker(queues, name=None):
    """The RQ worker: jobs run in the worker process itself (rq.SimpleWorker), no fork per job.

    Our jobs take milliseconds and reuse the process's database pool and compiled statements; forking a work
    horse per job cost several times the job itself (see `make bench-review`). A worker that dies mid-job is
    recovered by the review lease and the sweeper (`flask --app api clock`), not by RQ.
    """
    return SimpleWorker([queue(q) for q in queues], connection=redis_client(), serializer=JSONSerializer,
                        name=name, maintenance_interval=60)


@click.command("worker", help="Run an RQ worker on the named queues (default: reviews notifications).")
@click.argument("queues", nargs=-1)
@click.option("--with-scheduler", is_flag=True, help="also run RQ's scheduler (delayed retries)")
@click.option("--burst", is_flag=True, help="stop when the queues are empty")
@click.option("--name", default=None)
@with_appcontext
def worker_cmd(queues, with_scheduler, burst, name):
    db.engine.dispose()
    w = build_worker(queues or QUEUES, name=name)
    w.work(with_scheduler=with_scheduler, burst=burst, logging_level="WARNING")


@click.command("clock", help="Every INTERVAL seconds, re-enqueue what the database says is pending.")
@click.option("--interval", default=20.0, show_default=True)
@click.option("--once", is_flag=True)
@with_appcontext
def clock_cmd(interval, once):
    log = logging.getLogger("clock")
    while True:
        try:
            counts = sweep()
            if any(counts.values()):
                log.info("sweep: %s", counts)
        except Exception:  # the clock must keep going; the next pass retries
            log.exception("sweep failed")
            db.session.rollback()
        finally:
            db.session.remove()
        if once:
            return
        time.sleep(interval)




cli = worker_cmd
clock = clock_cmd
