"""ORM integrations built on the pool: ``postfork.sqlalchemy`` and ``postfork.django`` are their
public import paths."""
