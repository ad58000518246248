"""A small Flask + SQLAlchemy app (one model, read and write views) adopting postfork with two
settings: the pool class in SQLALCHEMY_ENGINE_OPTIONS and postfork.install(db.engine).
``FLASK_POOL=stock`` runs it on SQLAlchemy's QueuePool with pool_pre_ping for the controls."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

import postfork
from postfork.sqlalchemy import PostforkPool, engine_url
from postfork.wsgi import TimingMiddleware

ON_POSTFORK = os.environ.get("FLASK_POOL", "postfork") == "postfork"

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = engine_url(os.environ["DATABASE_URL"]).render_as_string(
    hide_password=False
)
app.config["SQLALCHEMY_ENGINE_OPTIONS"] = (
    {"poolclass": PostforkPool, "pool_size": 2} if ON_POSTFORK else {"pool_pre_ping": True}
)
db = SQLAlchemy(app)


class Note(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "postfork_e2e_flask_notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[str] = mapped_column(String(40))


with app.app_context():
    if os.environ.get("FLASK_CREATE_ALL", "true") == "true":
        db.create_all()
    if ON_POSTFORK:
        postfork.install(db.engine)


def _session() -> int:
    return int(db.session.execute(text("SELECT CONNECTION_ID()")).scalar_one())


@app.get("/notes/<int:note_id>")
def read(note_id: int) -> Any:
    note = db.session.get(Note, note_id)
    body = {"body": note.body if note else None, "pid": os.getpid(), "session": _session()}
    return jsonify(body), 200 if note else 404


@app.post("/notes")
def write() -> Any:
    note = Note(body=request.args.get("body", "x"))
    db.session.add(note)
    db.session.commit()
    return jsonify({"id": note.id, "pid": os.getpid(), "session": _session()})


application = TimingMiddleware(app, access_log_format="off")
