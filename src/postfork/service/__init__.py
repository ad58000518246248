"""The reference internal API service from the story: accounts and their orders, over MySQL.

``postfork.service.wsgi:application`` is the WSGI entry point that uWSGI and gunicorn load.
"""
