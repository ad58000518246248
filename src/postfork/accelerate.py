"""Importing this module in a uWSGI master turns on the respawn accelerator.

For apps that do not call ``postfork.install()`` in the master (``lazy-apps = true``, or no
postfork pool at all), one line of uWSGI configuration does it::

    shared-py-import = postfork.accelerate

uWSGI imports shared modules in the master before it forks, whatever ``lazy-apps`` says; in
every other process the import does nothing. ``POSTFORK_ACCELERATE_RESPAWNS=false`` turns it off.
It also warns, once, when ``min-worker-lifetime`` keeps ``max-requests`` from recycling.
"""

from .environment import accelerate_respawns as _enabled
from .servers.uwsgi import accelerate_respawns as _accelerate
from .servers.uwsgi import warn_about_recycling_once

active = _enabled() and _accelerate()
warn_about_recycling_once(server_log=True)  # says when min-worker-lifetime defeats max-requests
