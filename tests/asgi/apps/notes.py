"""A small FastAPI app on SQLAlchemy's async ORM (one model, a read and a write), adopting
postfork with two lines: postfork.sqlalchemy.create_async_engine() and the lifespan.

``NOTES_POOL=stock`` runs it on SQLAlchemy's own AsyncAdaptedQueuePool with pool_pre_ping, for
the controls: a connect on the request path is then counted from SQLAlchemy's connect event.
``NOTES_WARMUP_PATH``: the lifespan's warm-up request; ``NOTES_LOG_LEVEL``: logging configured
at that level. ``DATABASE_URL``: mysql+asyncmy:// or mysql+aiomysql://.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import String, event, text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import postfork
import postfork.asgi
import postfork.sqlalchemy
from postfork.observe import timing

ON_POSTFORK = os.environ.get("NOTES_POOL", "postfork") == "postfork"
if os.environ.get("NOTES_LOG_LEVEL"):  # postfork's own lines (warm, master) in the server's log
    logging.basicConfig(level=os.environ["NOTES_LOG_LEVEL"], format="%(name)s: %(message)s")
URL = os.environ["DATABASE_URL"]


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "postfork_asgi_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(String(40))


if ON_POSTFORK:
    engine = postfork.sqlalchemy.create_async_engine(URL, pool_size=2)
    app = FastAPI(
        lifespan=postfork.asgi.lifespan(
            engine, warmup_path=os.environ.get("NOTES_WARMUP_PATH") or None
        )
    )
else:
    engine = create_async_engine(URL, pool_size=2, pool_pre_ping=True)

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connecting(dialect: Any, record: Any, cargs: Any, cparams: Any) -> None:
        record.info["connect_started"] = time.perf_counter()

    @event.listens_for(engine.sync_engine, "connect")
    def _connected(dbapi_connection: Any, record: Any) -> None:  # stock pays on requests
        started = record.info.pop("connect_started", time.perf_counter())
        timing.report_checkout(0.0, time.perf_counter() - started)

    app = FastAPI()

Session = async_sessionmaker(engine, expire_on_commit=False)


@app.exception_handler(postfork.Error)
async def database_unavailable(request: Request, exc: postfork.Error) -> JSONResponse:
    return JSONResponse(
        {"error": "database unavailable, retry shortly"}, 503, headers={"Retry-After": "1"}
    )


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/notes/{note_id}")
async def read(note_id: int) -> JSONResponse:
    async with Session() as session:
        note = await session.get(Note, note_id)
        connection_id = (await session.execute(text("SELECT CONNECTION_ID()"))).scalar_one()
    body = {"body": note.body if note else None, "pid": os.getpid(), "session": connection_id}
    return JSONResponse(body, 200 if note else 404)


@app.post("/notes")
async def write(body: str = "x") -> dict[str, Any]:
    async with Session() as session:
        note = Note(body=body)
        session.add(note)
        await session.commit()
    return {"id": note.id, "pid": os.getpid()}


application = postfork.asgi.TimingMiddleware(app, access_log_format="off")
