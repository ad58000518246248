"""``postfork doctor``'s checks, part of the library: what a pool would see on a database
(``report``), the connections a deployment opens against each server's limits (``budget``),
and the fork-safety check in a child process (``forkcheck``). They speak through a ``Say``
(``output``): the library itself never prints."""
