"""The command line the bench records in its JSON never carries a database password."""

from __future__ import annotations

from postfork.bench.suite import _redacted


def test_database_urls_in_the_recorded_command_are_redacted() -> None:
    argv = [
        "--quick",
        "--database-url",
        "mysql://app:s3cret@db:3306/shop?ssl_mode=verify_identity&ssl_ca=/ca.pem",
        "--database-url=mysql+pymysql://app:s3cret@db/shop",
        "--rate",
        "5",
    ]
    shown = " ".join(_redacted(argv))
    assert "s3cret" not in shown
    assert "mysql://app:***@db:3306/shop?ssl_ca=/ca.pem&ssl_mode=verify_identity" in shown
    assert "--database-url=mysql+pymysql://app:***@db:3306/shop" in shown
    assert shown.startswith("--quick --database-url ") and shown.endswith("--rate 5")


def test_a_malformed_url_is_not_echoed() -> None:
    assert _redacted(["--database-url", "mysql://app:pa#ss@db/x"]) == [
        "--database-url",
        "<a malformed database URL>",
    ]
