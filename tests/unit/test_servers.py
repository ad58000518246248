"""Server and role detection, without a server: the stack gunicorn would have is simulated by
running detect() from code compiled under gunicorn's file names."""

from __future__ import annotations

import gunicorn  # noqa: F401  (detection only looks when gunicorn is imported)

from postfork._servers import Role, detect


def detect_from(filename: str) -> tuple[str, Role]:
    namespace: dict[str, object] = {"detect": detect}
    exec(compile("result = detect()", filename, "exec"), namespace)
    return namespace["result"]  # type: ignore[return-value]


def test_no_server_is_standalone() -> None:
    assert detect() == ("none", Role.STANDALONE)


def test_app_loaded_by_a_gunicorn_worker_is_a_worker() -> None:
    assert detect_from("/venv/site-packages/gunicorn/workers/base.py") == ("gunicorn", Role.WORKER)


def test_app_preloaded_by_the_gunicorn_arbiter_is_the_master() -> None:
    assert detect_from("/venv/site-packages/gunicorn/arbiter.py") == ("gunicorn", Role.MASTER)
