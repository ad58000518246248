"""SQLAlchemy on postfork (``pip install 'postfork[sqlalchemy]'``)::

    engine = create_engine(url, poolclass=postfork.sqlalchemy.PostforkPool, pool_size=2)
    postfork.install(engine)

or in one call, ``postfork.sqlalchemy.create_engine(url, pool_size=2)``. The async engine
(asyncmy, aiomysql), warm in the app's lifespan::

    engine = postfork.sqlalchemy.create_async_engine("mysql+asyncmy://...", pool_size=2)
    app = FastAPI(lifespan=postfork.asgi.lifespan(engine))

A primary with replicas (or Galera nodes)::

    engines = postfork.sqlalchemy.create_cluster_engines(primary_url, [replica_url, ...])
    Session = sessionmaker(class_=postfork.sqlalchemy.RoutingSession, postfork_engines=engines)
"""

from .errors import ConfigError, MissingExtra

try:
    from .integrations.sqlalchemy import (
        AsyncPostforkPool,
        PoolTimeoutError,
        PostforkPool,
        create_async_engine,
        create_engine,
        engine_url,
        install,
    )
    from .integrations.sqlalchemy_cluster import (
        ClusterEngines,
        RoutingSession,
        create_cluster_engines,
    )
except ImportError as exc:  # pragma: no cover - exercised by the missing-extras test
    if exc.name and exc.name.split(".")[0] == "sqlalchemy":
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = version("SQLAlchemy")
        except PackageNotFoundError:
            raise MissingExtra("SQLAlchemy", "sqlalchemy") from exc
        raise ConfigError(
            f"SQLAlchemy {installed} is installed, but postfork.sqlalchemy needs 2.0.16 or "
            f"newer ({exc}): pip install 'postfork[sqlalchemy]'"
        ) from exc
    raise

__all__ = [
    "AsyncPostforkPool",
    "ClusterEngines",
    "PoolTimeoutError",
    "PostforkPool",
    "RoutingSession",
    "create_async_engine",
    "create_cluster_engines",
    "create_engine",
    "engine_url",
    "install",
]
