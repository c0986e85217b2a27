#!/usr/bin/env python3
"""Checks the built book (run by CI after `mdbook build docs`; see docs/src/testing.md).

Usage: python3 scripts/check-book.py [BOOK_DIR]   (default: docs/book)
       python3 scripts/check-book.py --configs PAASTIS_BINARY

The first form checks the built book. The second checks that every YAML block of the pages
in CONFIG_PAGES (the cookbook's recipes, the examples of the guides) is a configuration
`paastis check` accepts: each is written to a file and checked with the variables it names
set to placeholders, platform APIs pointed at a closed port of 127.0.0.1 (so nothing leaves
the machine) and an in-memory database; exit code 2 of `paastis check` (a refused
configuration) fails it, an unreachable provider or registry does not. It needs PyYAML.

Reads every HTML page of the built book and reports, one line each:
  * an internal link (a relative href or src) whose file is not in the book;
  * an internal link's #anchor that is not an id (or <a name>) of the page it points to;
  * an asset loaded from outside the book: a script, style sheet, font, icon, image or
    frame with an http(s) or protocol-relative URL, in a page, in a <style> block, or in
    one of the book's CSS files (url(...), @import);
  * a runnable Rust example (mdBook's playground calls play.rust-lang.org).
Links to other sites (<a href="https://...">) are fine: they load nothing.
Exits 1 when anything is broken, 2 when the book is not built, 0 otherwise.
Standard library only.
"""

import os
import re
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

# Attributes that make the browser fetch something when the page loads.
ASSET_ATTRIBUTES = {
    "script": ("src",),
    "img": ("src", "srcset"),
    "iframe": ("src",),
    "frame": ("src",),
    "embed": ("src",),
    "object": ("data",),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "track": ("src",),
    "input": ("src",),
}

# CSS references: url(...) and @import "...".
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)['"]?\s*\)|@import\s+['"]([^'"]+)['"]""")


def external(url):
    """Whether a URL points outside the book (another host)."""
    parts = urlsplit(url.strip())
    return parts.scheme in ("http", "https") or (not parts.scheme and url.strip().startswith("//"))


def local(url):
    """Whether a URL is a link inside the book (relative, or a bare #anchor)."""
    parts = urlsplit(url.strip())
    return not parts.scheme and not url.strip().startswith("//") and not url.startswith("/")


class Page(HTMLParser):
    """One HTML page: its ids, its links and its assets."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids = set()
        self.links = []  # (tag, url)
        self.assets = []  # (tag, attribute, url)
        self.styles = []  # text of <style> blocks
        self.base = None
        self.playgrounds = 0  # runnable Rust examples: their buttons call a remote service
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("id",):
            if attrs.get(name):
                self.ids.add(attrs[name])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        if tag == "base" and attrs.get("href"):
            self.base = attrs["href"]
        if tag == "a" and attrs.get("href") is not None:
            self.links.append((tag, attrs["href"]))
        if tag == "link" and attrs.get("href"):
            rel = (attrs.get("rel") or "").lower().split()
            # Every <link> the book has fetches something (stylesheet, icon, preload...),
            # except navigation hints, which only name a page.
            if set(rel) & {"prev", "next", "canonical", "alternate", "help", "license", "search"}:
                self.links.append((tag, attrs["href"]))
            else:
                self.assets.append((tag, "href", attrs["href"]))
        for attribute in ASSET_ATTRIBUTES.get(tag, ()):
            value = attrs.get(attribute)
            if not value:
                continue
            urls = [item.strip().split(" ")[0] for item in value.split(",")] if attribute == "srcset" else [value]
            for url in urls:
                self.assets.append((tag, attribute, url))
        if "playground" in (attrs.get("class") or "").split():
            self.playgrounds += 1
        if tag == "style":
            self._in_style = True
        if attrs.get("style"):
            self.styles.append(attrs["style"])

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag == "style":
            self._in_style = False

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def parse(path):
    page = Page()
    with open(path, encoding="utf-8", errors="replace") as file:
        page.feed(file.read())
    page.close()
    return page


def css_urls(text):
    for match in CSS_URL.finditer(text):
        yield match.group(1) or match.group(2)


# Pages whose every ```yaml block is a whole configuration file.
CONFIG_PAGES = ("cookbook.md", "local.md", "hosted-spaces.md", "several-instances.md")

# Where the platform providers are sent while checking: a closed port, answered at once.
NOWHERE = "http://127.0.0.1:9"


def placeholder(name):
    """A value for the variable `name` that passes validation (and reaches nothing)."""
    if name.endswith("_URL") and "REDIS" in name:
        return "redis://127.0.0.1:9"
    if name.endswith("_URL") and ("DATABASE" in name or "POSTGRES" in name):
        return "postgres://paastis:placeholder@127.0.0.1:9/paastis"
    if name.endswith("_URL"):
        return NOWHERE
    return "placeholder-value-0123456789"


def offline(config):
    """The configuration with every platform provider's API on 127.0.0.1 (spaces' too)."""
    def providers(section):
        for provider in section.get("providers") or []:
            if isinstance(provider, dict) and provider.get("type") != "process":
                provider["api_url"] = NOWHERE
                if provider.get("type") == "scalingo":
                    provider["auth_url"] = NOWHERE
    if isinstance(config, dict):
        providers(config)
        for space in config.get("spaces") or []:
            if isinstance(space, dict):
                providers(space)
    return config


def check_configs(binary):
    try:
        import yaml
    except ImportError:
        print("check-book: --configs needs PyYAML (apt-get install python3-yaml)", file=sys.stderr)
        return 2
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "src")
    failures = 0
    count = 0
    with tempfile.TemporaryDirectory() as work:
        for page in CONFIG_PAGES:
            with open(os.path.join(root, page), encoding="utf-8") as file:
                text = file.read()
            for index, block in enumerate(re.findall(r"```yaml\n(.*?)```", text, re.S)):
                count += 1
                where = f"{page}, YAML block {index + 1}"
                try:
                    config = offline(yaml.safe_load(block))
                except yaml.YAMLError as error:
                    print(f"{where}: not YAML: {error}")
                    failures += 1
                    continue
                path = os.path.join(work, f"{count}.yml")
                with open(path, "w", encoding="utf-8") as file:
                    yaml.safe_dump(config, file)
                env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LOG_LEVEL": "error"}
                for name in set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", block)):
                    env[name] = placeholder(name)
                env["PAASTIS_DATABASE__URL"] = "sqlite::memory:"
                run = subprocess.run(
                    [binary, "check", "--config", path],
                    cwd=work, env=env, capture_output=True, text=True, timeout=120,
                )
                if run.returncode == 2:
                    failures += 1
                    print(f"{where}: refused by `paastis check`:\n{run.stderr.strip()}")
    if failures:
        print(f"check-book: {failures} of {count} configuration(s) refused", file=sys.stderr)
        return 1
    print(f"check-book: {count} configurations of {', '.join(CONFIG_PAGES)} accepted by `paastis check`")
    return 0


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--configs":
        return check_configs(sys.argv[2])
    book = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "docs/book")
    if not os.path.isfile(os.path.join(book, "index.html")):
        print(f"check-book: {book} holds no built book: run `mdbook build docs` first", file=sys.stderr)
        return 2

    pages = {}
    css_files = []
    for folder, _dirs, files in os.walk(book):
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith(".html"):
                pages[path] = parse(path)
            elif name.endswith(".css"):
                css_files.append(path)

    problems = []

    def where(path):
        return os.path.relpath(path, book)

    for path, page in sorted(pages.items()):
        # A page with <base href="/..."> (mdBook's 404 page) resolves from the book's root.
        directory = os.path.dirname(path)
        if page.base is not None and page.base.startswith("/"):
            directory = book
        for tag, url in page.links:
            if not local(url):
                continue
            parts = urlsplit(url)
            target_path = path
            if parts.path:
                target_path = os.path.normpath(os.path.join(directory, unquote(parts.path)))
                if url.endswith("/") or os.path.isdir(target_path):
                    target_path = os.path.join(target_path, "index.html")
                if not target_path.startswith(book + os.sep):
                    problems.append(f"{where(path)}: <{tag}> {url}: points outside the book")
                    continue
                if not os.path.exists(target_path):
                    problems.append(f"{where(path)}: <{tag}> {url}: no such file in the book")
                    continue
            fragment = unquote(parts.fragment)
            if fragment:
                target = pages.get(target_path)
                if target is None:
                    problems.append(f"{where(path)}: <{tag}> {url}: #{fragment} in a file that is not a page")
                elif fragment not in target.ids:
                    problems.append(f"{where(path)}: <{tag}> {url}: no id `{fragment}` in {where(target_path)}")
        for tag, attribute, url in page.assets:
            if external(url):
                problems.append(f"{where(path)}: <{tag} {attribute}> {url}: loaded from outside the book")
            elif local(url) and not urlsplit(url).scheme:
                asset = os.path.normpath(os.path.join(directory, unquote(urlsplit(url).path)))
                if urlsplit(url).path and not os.path.exists(asset):
                    problems.append(f"{where(path)}: <{tag} {attribute}> {url}: no such file in the book")
        if page.playgrounds:
            problems.append(
                f"{where(path)}: {page.playgrounds} runnable Rust example(s): they would call "
                "play.rust-lang.org (set [output.html.playground] runnable = false)"
            )
        for text in page.styles:
            for url in css_urls(text):
                if external(url):
                    problems.append(f"{where(path)}: style: {url}: loaded from outside the book")

    for path in sorted(css_files):
        with open(path, encoding="utf-8", errors="replace") as file:
            for url in css_urls(file.read()):
                if external(url):
                    problems.append(f"{where(path)}: {url}: loaded from outside the book")

    for problem in problems:
        print(problem)
    if problems:
        print(f"check-book: {len(problems)} problem(s) in {book}", file=sys.stderr)
        return 1
    print(f"check-book: {len(pages)} pages, every internal link and anchor resolves, nothing loaded from outside")
    return 0


if __name__ == "__main__":
    sys.exit(main())
