"""Server and role detection without a server: a stand-in ``uwsgi`` module for uWSGI, gunicorn's
named hooks called as gunicorn calls them, and the stack fallback simulated by running detect()
from code compiled under gunicorn's file names."""

from __future__ import annotations

import json
import logging
import os
import sys
import types
from collections.abc import Iterator

import gunicorn  # noqa: F401  (detection only looks when gunicorn is imported)
import pytest

import postfork.gunicorn as hooks
from postfork import Pool, server_warmup
from postfork.servers import Role, detect
from postfork.servers import gunicorn as gunicorn_server

from .fakes import FakeDriver


def detect_from(filename: str) -> tuple[str, Role]:
    namespace: dict[str, object] = {"detect": detect}
    exec(compile("result = detect()", filename, "exec"), namespace)
    return namespace["result"]  # type: ignore[return-value]


@pytest.fixture(autouse=True)
def no_gunicorn_hooks_seen() -> Iterator[None]:
    gunicorn_server._arbiter_pid, gunicorn_server._worker = 0, None
    yield
    gunicorn_server._arbiter_pid, gunicorn_server._worker = 0, None


@pytest.fixture
def fake_uwsgi(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    module = types.SimpleNamespace(worker_id=lambda: 0, opt={})
    monkeypatch.setitem(sys.modules, "uwsgi", module)
    return module


def test_no_server_is_standalone() -> None:
    assert detect() == ("none", Role.STANDALONE)


def test_uwsgi_worker_id_zero_is_the_master_and_any_other_a_worker(
    fake_uwsgi: types.SimpleNamespace,
) -> None:
    assert detect() == ("uwsgi", Role.MASTER)
    fake_uwsgi.worker_id = lambda: 3
    assert detect() == ("uwsgi", Role.WORKER)


def test_app_loaded_by_a_gunicorn_worker_is_a_worker() -> None:
    assert detect_from("/venv/site-packages/gunicorn/workers/base.py") == ("gunicorn", Role.WORKER)


def test_app_preloaded_by_the_gunicorn_arbiter_is_the_master() -> None:
    assert detect_from("/venv/site-packages/gunicorn/arbiter.py") == ("gunicorn", Role.MASTER)


def test_gunicorn_pre_fork_hook_makes_this_process_the_arbiter_without_the_stack() -> None:
    hooks.pre_fork(types.SimpleNamespace(pid=os.getpid()), object())
    assert detect() == ("gunicorn", Role.MASTER)  # no gunicorn code on this stack


def test_gunicorn_post_fork_hook_makes_the_child_a_worker_even_under_the_arbiter_code() -> None:
    arbiter = types.SimpleNamespace(pid=os.getpid())
    hooks.pre_fork(arbiter, object())
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            hooks.post_fork(arbiter, object())
            role = detect_from("/venv/site-packages/gunicorn/arbiter.py")[1].value
            os.write(write_end, json.dumps(role).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    assert json.loads(os.read(read_end, 100)) == "worker"
    assert detect() == ("gunicorn", Role.MASTER)  # the arbiter itself is unchanged


def test_a_forked_worker_knows_its_gunicorn_worker_object_from_inside_the_fork() -> None:
    """``os.register_at_fork`` runs postfork's child hooks (the pools' and Django's warm-ups)
    before gunicorn's ``post_fork``: the worker object given to ``pre_fork`` is already known
    there, in the child only."""
    worker = types.SimpleNamespace(name="the worker about to be forked")
    hooks.pre_fork(types.SimpleNamespace(pid=os.getpid()), worker)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write_end, json.dumps(gunicorn_server.serving_worker().name).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    assert json.loads(os.read(read_end, 100)) == worker.name
    assert gunicorn_server.serving_worker() is None  # the arbiter serves nothing


def test_gunicorn_pre_fork_closes_what_a_pool_opened_in_the_arbiter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = Pool("mysql://u@db/x", driver=FakeDriver(), min_idle=2, max_size=2)  # type: ignore[arg-type]
    pool.warm()  # the app opened connections while the arbiter loaded it
    conns = [slot.conn for slot in pool._idle]
    with caplog.at_level("WARNING", logger="postfork.server"):
        hooks.pre_fork(types.SimpleNamespace(pid=os.getpid()), object())
    assert all(conn.closed and not conn.closed_on_devnull for conn in conns)  # clean COM_QUIT
    assert pool.stats()["idle"] == 0 and pool.warm() == 0  # and it keeps none from now on
    assert "held 2 idle and 0 leased connection(s)" in caplog.text
    assert "call postfork.install(pool)" in caplog.text


def test_children_freeze_what_they_inherited_when_the_master_asks() -> None:
    import gc

    from postfork import fork

    def freeze_count_in_a_child() -> int:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report and leave without running the parent's teardown
            os.write(write, str(gc.get_freeze_count()).encode())
            os._exit(0)
        os.close(write)
        count = int(os.read(read, 64))
        os.close(read)
        os.waitpid(pid, 0)
        return count

    gc.unfreeze()
    try:
        fork.freeze_gc_in_children(True)
        assert freeze_count_in_a_child() > 1000  # the whole interpreter's objects
        fork.freeze_gc_in_children(False)
        assert freeze_count_in_a_child() == 0
    finally:
        fork.freeze_gc_in_children(False)
    assert gc.get_freeze_count() == 0  # the parent itself is never frozen


@pytest.mark.parametrize(
    ("max_requests", "jitter", "workers", "warned"),
    [(1000, 0, 4, True), (1000, 50, 4, False), (1000, 0, 1, False), (0, 0, 4, False)],
)
def test_gunicorn_recycling_every_worker_at_once_is_said_at_the_first_fork(
    max_requests: int, jitter: int, workers: int, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    from postfork.servers import gunicorn as gunicorn_server

    gunicorn_server._warned_pid = 0
    cfg = types.SimpleNamespace(
        max_requests=max_requests, max_requests_jitter=jitter, workers=workers
    )
    arbiter = types.SimpleNamespace(pid=os.getpid(), cfg=cfg)
    with caplog.at_level("WARNING", logger="postfork.server"):
        hooks.pre_fork(arbiter, object())
        hooks.pre_fork(arbiter, object())  # the next forks say nothing more
    said = [r.message for r in caplog.records if "max_requests_jitter 0" in r.message]
    assert len(said) == (1 if warned else 0), said
    if warned:
        assert "set max_requests_jitter (about 100)" in said[0]


def test_gunicorns_request_handling_warms_on_requests_of_its_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """post_fork runs gunicorn's parser, environ and response code on a socket pair, so a new
    worker's first real request does not run them for the first time. The test fails when
    the gunicorn internals it uses move (the warm-up then only logs at DEBUG)."""
    from gunicorn.config import Config

    class SyncWorkerLike:
        cfg = Config()
        nr = 0  # requests served: the warm-up's are not counted

        def handle_request(self) -> None:
            raise AssertionError("the warm-up never reaches the app")

    worker = SyncWorkerLike()
    with caplog.at_level(logging.DEBUG, logger="postfork.server"):
        server_warmup.warm_wsgi_worker(worker)
    assert "gunicorn's request handling warmed on 3 request(s)" in caplog.text
    assert worker.nr == 0
