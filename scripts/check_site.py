"""Opens the built documentation site (site/, from make docs) in headless Chromium, as a reader
would: every page from the navigation loads without a console error or a failed request, the
navigation links to every page, the search finds a term, and the API page shows the public
names. Exits non-zero with what failed.

    python scripts/check_site.py [--site site] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import sys
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
API_NAMES = ("postfork.Pool", "postfork.AsyncPool", "postfork.install", "postfork.Cluster")


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """The site over HTTP on loopback (search loads its index with fetch, which file:// refuses)."""
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def check(base: str, chromium: str) -> list[str]:
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()

        def failed(url: str, why: str) -> None:
            if "ERR_ABORTED" not in why:  # cancelled by the next navigation, not an error
                problems.append(f"{page.url}: {url} failed: {why}")

        page.on("console", lambda m: m.type == "error" and problems.append(f"{page.url}: {m.text}"))
        page.on("pageerror", lambda e: problems.append(f"{page.url}: {e}"))
        page.on("requestfailed", lambda r: failed(r.url, r.failure or ""))
        page.goto(base)
        links = page.eval_on_selector_all(
            "nav.md-nav--primary a.md-nav__link[href]", "els => els.map(e => e.href)"
        )
        pages = sorted({link.split("#")[0] for link in links if link.startswith(base)})
        if len(pages) < 20:
            problems.append(f"the navigation links to {len(pages)} pages: {pages}")
        for url in pages:
            answer = page.goto(url)
            if answer is None or answer.status != 200:
                problems.append(f"{url}: HTTP {answer and answer.status}")
            elif not page.locator("article h1").count():
                problems.append(f"{url}: no title")
        page.goto(base + "reference/api/")
        text = page.locator("article").inner_text()
        problems += [f"API page: {name} missing" for name in API_NAMES if name not in text]
        page.goto(base, wait_until="networkidle")  # the search worker has its index
        page.locator("label.md-search__icon, .md-search__input").first.click()
        page.locator(".md-search__input").press_sequentially("wait_timeout", delay=20)
        try:
            page.wait_for_selector(".md-search-result__item", timeout=10_000)
        except Exception:  # Playwright's TimeoutError
            problems.append("search for 'wait_timeout' found nothing")
        browser.close()
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=ROOT / "site")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").exists():
        parser.error(f"{args.site}/index.html not found: run make docs first")
    server, base = serve(args.site)
    try:
        problems = check(base, args.chromium)
    finally:
        server.shutdown()
    for problem in problems:
        print(f"check_site: {problem}", file=sys.stderr)
    print(f"check_site: {'FAILED' if problems else 'ok'}: {base} in {args.chromium}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
