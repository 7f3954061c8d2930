"""One transaction per service call: commit, then send the jobs that depend on it; roll back on any error."""
import functools
from contextlib import contextmanager

from flask import g

from api.extensions import db, writing
from workers.queues import discard_pending, flush_after_commit


@contextmanager
def unit_of_work():
    """The outermost unit commits; nested units join it. Jobs registered inside are enqueued after the commit."""
    if g.get("in_unit"):
        yield
        return
    g.in_unit = True
    try:
        with writing():
            yield
            db.session.commit()
    except BaseException:
        db.session.rollback()
        discard_pending()
        notifications.discard_new()
        raise
    finally:
        g.in_unit = False
    flush_after_commit()
    notifications.dispatch_new()


from api.services import notifications  # noqa: E402  (notifications uses unit_of_work too)


def transactional(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with unit_of_work():
            return fn(*args, **kwargs)
    return wrapper
