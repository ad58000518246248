"""The reference service: an internal JSON API over MySQL: accounts and their orders.

``postfork_tools.service.wsgi:application`` is the WSGI entry point that uWSGI and gunicorn load.
"""
