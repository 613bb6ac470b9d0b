"""One worker process of the positions tests: GraphQLWSApp under uvicorn.

usage: python positions_worker.py KIND URL PORT
Serves GraphQLWSApp on 127.0.0.1:PORT with an executor on the Redis
(KIND=redis, URL a redis:// URL) or PostgreSQL (KIND=postgresql) bus.
"""
import sys

import uvicorn

from fraiseql._fraiseql_rs import subscriptions as S
from fraiseql.subscriptions import GraphQLWSApp


def main() -> None:
    kind, url, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if kind == "redis":
        config = S.PyEventBusConfig.redis(url, "positions", stream="positions")
    else:
        config = S.PyEventBusConfig.postgresql(url, poll_interval=0.05)
    executor = S.PySubscriptionExecutor(config)
    app = GraphQLWSApp(executor, on_connect=lambda params, scope: ("u", "t"))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
