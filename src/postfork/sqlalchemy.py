"""SQLAlchemy on postfork (``pip install 'postfork[sqlalchemy]'``)::

    engine = create_engine(url, poolclass=postfork.sqlalchemy.PostforkPool, pool_size=2)
    postfork.install(engine)

or in one call, ``postfork.sqlalchemy.create_engine(url, pool_size=2)``.
"""

from .errors import MissingExtra

try:
    from .integrations.sqlalchemy import (
        PoolTimeoutError,
        PostforkPool,
        create_engine,
        engine_url,
        install,
    )
except ImportError as exc:  # pragma: no cover - exercised by the missing-extras test
    if exc.name and exc.name.split(".")[0] == "sqlalchemy":
        raise MissingExtra("SQLAlchemy", "sqlalchemy") from exc
    raise

__all__ = ["PoolTimeoutError", "PostforkPool", "create_engine", "engine_url", "install"]
