"""A Django shop project as ``startproject`` makes one (its middleware, auth, sessions, admin
apps), with customers, orders and lines and one JSON view through the ORM. ``SHOP_MODE``:
``stock`` (Django's MySQL backend, ``CONN_MAX_AGE`` 0), ``postfork`` (``ENGINE:
postfork.django`` and the ``postfork.django`` app, nothing more) or ``warm`` (plus
``POSTFORK_WARMUP_PATH``). ``SHOP_DATABASE_URL``: the database."""
