"""gunicorn's settings for bin/serve, from the environment.

Defaults suit a 2-core machine: 2 worker processes of 4 threads each. Each process keeps
its own PostgreSQL pool of at most DB_POOL_MAX_SIZE connections (config/settings.py), so
the web side never holds more than WEB_WORKERS x DB_POOL_MAX_SIZE connections; with the
default of 4 per pool, a thread never waits for a connection.
"""

import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_WORKERS", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
worker_class = "gthread"
# A request that takes longer is stuck; its worker is replaced.
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
# On SIGTERM, requests under way get this long to finish (bin/serve exits within 30 s).
graceful_timeout = 20
keepalive = 5
accesslog = os.environ.get("WEB_ACCESS_LOG", "-") or None
errorlog = "-"
# Behind a proxy, it is the proxy that says the request came over TLS (SECURE_PROXY_SSL_HEADER).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# gunicorn's control socket lives at one path per user ($HOME/.gunicorn/gunicorn.ctl), so a
# second server on the machine would take over the first one's; Backfill does not use it.
control_socket_disable = True
