"""A small Twisted web app on SQLite with no probe code: one page queries on the reactor thread,
one hands the query to a thread with deferToThread.

    python tests/data/twisted_app.py PORT DB
"""

import sqlite3
import sys
import time

from twisted.internet import reactor, threads
from twisted.web import resource, server


def count(path):
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT count(*) FROM t").fetchone()[0]  # twisted count
    finally:
        db.close()


class Blocking(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        time.sleep(0.001)  # twisted sleep
        return str(count(self.path)).encode()  # twisted on reactor


class Threaded(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        done = threads.deferToThread(count, self.path)  # twisted handoff
        done.addCallback(lambda n: (request.write(str(n).encode()), request.finish()))
        return server.NOT_DONE_YET


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE IF NOT EXISTS t (x)")
    db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(10)])
    db.commit()
    db.close()
    root = resource.Resource()
    for name, cls in ((b"blocking", Blocking), (b"threaded", Threaded)):
        page = cls()
        page.path = path
        root.putChild(name, page)
    root.putChild(b"health", Blocking())
    root.children[b"health"].path = path
    reactor.listenTCP(port, server.Site(root), interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main()
