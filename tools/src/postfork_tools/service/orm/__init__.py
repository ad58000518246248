"""The reference service's summary endpoint served through an ORM, for the bench's ORM
scenarios: SQLAlchemy (stock QueuePool with pre-ping, or on postfork) and Django (stock, per
request or persistent with health checks, or on postfork). Same data, same answer, same JSON as
the plain service; only the database access differs."""
