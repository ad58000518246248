"""The tooling around postfork, outside the library's wheel: a private MariaDB (``embedded``)
with replication, Galera and HAProxy launchers, the database of last resort (``database``),
``postfork serve`` (``serve``), the reference service (``service``), ``postfork bench``
(``bench``), the demo, and the shipped server configurations (``deploy``)."""
