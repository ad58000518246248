"""The ``postfork`` commands that come with postfork-tools (``db``, ``serve``, ``bench``,
``demo``): each module's ``add_parser`` is found by ``postfork.cli`` through the
``postfork.commands`` entry points."""
