"""Google Drive's public download protocol, as the maintained clients speak it (gdown, RobustBench).

- **Folder listing**: ``GET {drive}/embeddedfolderview?id=FOLDER`` — an HTML list of links
  ``…/file/d/<id>/view`` whose text is the file name (gdown ≥ 5.2); when that page is not served,
  ``GET {drive}/drive/folders/FOLDER``, whose script ``window['_DRIVE_ivd'] = '<escaped JSON>'`` holds
  ``[[id, parent, name, mime type, …], …]`` (older gdown).
- **File**: ``GET {drive}/uc?export=download&id=ID`` answers the file (``Content-Disposition: attachment``)
  or, for a file too large to scan for viruses, an HTML page with ``<form id="download-form">`` whose hidden
  inputs (``id``, ``export``, ``confirm``, ``uuid``, …) are sent to the form's path (``/download``) on
  ``{usercontent}`` (on ``{drive}`` when the action names that host) to get the file. The older forms of
  that page are understood too: a link ``/uc?export=download&confirm=…&id=…`` (gdown), or a
  ``download_warning…`` cookie whose value is the ``confirm`` token (RobustBench's ``download_gdrive``).
  Other HTML answers are refusals: "Too many users have viewed or downloaded this file recently" (rate
  limit), a sign-in page (not shared publicly), an error page.

``{drive}`` and ``{usercontent}`` come from ``SDNET_DRIVE_ENDPOINT`` (default ``https://drive.google.com``)
and ``SDNET_DRIVE_USERCONTENT_ENDPOINT`` (default ``https://drive.usercontent.google.com``), read at call
time, so tests run the whole path against a stand-in on 127.0.0.1 (the usercontent endpoint defaults to
the drive one when only that is set). Hosts named in a page are never contacted: only the two endpoints
(plus the redirects they give). HTML is parsed with the
standard library's :class:`html.parser.HTMLParser`; nothing in a page is executed.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

from ..errors import NetworkError
from ..netio import Transfer, origin
from .drive_http import FileDone, Page, Session, discard_part, get

DRIVE_ENDPOINT = "https://drive.google.com"
USERCONTENT_ENDPOINT = "https://drive.usercontent.google.com"
_FILE_LINK = re.compile(r"/file/d/([-\w]{10,})/view")
_IVD = re.compile(r"_DRIVE_ivd'\]\s*=\s*'((?:[^'\\]|\\.)*)'")
_RATE_LIMIT = ("too many users have viewed or downloaded this file recently", "quota exceeded")
_SIGN_IN = ("accounts.google.com", "sign in - google accounts")


def endpoints() -> tuple[str, str]:
    """``(drive, usercontent)`` base URLs, from the environment now (no trailing slash).

    ``SDNET_DRIVE_USERCONTENT_ENDPOINT`` defaults to ``SDNET_DRIVE_ENDPOINT`` when only that is set (one
    stand-in serving both hosts), else to the real usercontent host.
    """
    drive = os.environ.get("SDNET_DRIVE_ENDPOINT") or ""
    usercontent = os.environ.get("SDNET_DRIVE_USERCONTENT_ENDPOINT") or drive or USERCONTENT_ENDPOINT
    return (drive or DRIVE_ENDPOINT).rstrip("/"), usercontent.rstrip("/")


@dataclass(frozen=True)
class DriveFile:
    """One file of a folder listing."""

    id: str
    name: str


class _PageParser(HTMLParser):
    """The parts of a Drive page we read: title, links with their text, the download form, error captions."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.links: list[tuple[str, str]] = []
        self.form: dict[str, str] | None = None
        self.action = ""
        self.caption = ""
        self._href: str | None = None
        self._text: list[str] = []
        self._in: str | None = None  # "title" | "caption" while inside one
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "title":
            self._in = "title"
        elif tag == "a" and a.get("href"):
            self._href, self._text = a["href"], []
        elif tag == "form" and a.get("id") == "download-form":
            self.form, self.action, self._in_form = {}, a.get("action", ""), True
        elif tag == "input" and self._in_form and self.form is not None and a.get("name"):
            if a.get("type", "").lower() == "hidden":
                self.form[a["name"]] = a.get("value", "")
        elif tag == "p" and "uc-error-subcaption" in a.get("class", ""):
            self._in = "caption"

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append((self._href, " ".join("".join(self._text).split())))
            self._href = None
        elif tag == "form":
            self._in_form = False
        elif tag in ("title", "p"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)
        if self._in == "title":
            self.title += data
        elif self._in == "caption":
            self.caption += data


def parse_page(text: str) -> _PageParser:
    """Parse a Drive HTML page (never raises on malformed HTML)."""
    parser = _PageParser()
    parser.feed(text)
    parser.close()
    return parser


def parse_embedded_listing(text: str) -> list[DriveFile]:
    """Files of an ``embeddedfolderview`` page: links ``…/file/d/<id>/view`` and their text."""
    files = []
    for href, name in parse_page(text).links:
        m = _FILE_LINK.search(href)
        if m and name:
            files.append(DriveFile(m.group(1), name))
    return files


def parse_ivd_listing(text: str) -> list[DriveFile] | None:
    """Files of a ``/drive/folders/ID`` page from its ``window['_DRIVE_ivd']`` array; ``None`` if it has none."""
    m = _IVD.search(text)
    if m is None:
        return None
    try:  # as gdown did: JS escapes decoded over the UTF-8 bytes, names re-read as UTF-8
        items = json.loads(m.group(1).encode("utf-8").decode("unicode_escape"))[0] or []
        return [DriveFile(str(e[0]), str(e[2]).encode("raw_unicode_escape").decode("utf-8", errors="replace"))
                for e in items if isinstance(e, list) and len(e) > 3 and e[3] != "application/vnd.google-apps.folder"]
    except (ValueError, TypeError, IndexError, UnicodeError):
        return None


def _refusal(page: Page, what: str) -> NetworkError:
    """The one line for an HTML answer that is not what was asked: rate limit, sign-in, error page."""
    parsed = parse_page(page.text)
    low = page.text.lower()
    where = origin(page.url)
    if any(s in low for s in _RATE_LIMIT):
        return NetworkError(f"Google Drive ({where}) refuses {what} for now: \"Too many users have viewed or "
                            "downloaded this file recently\" (its rate limit; it lifts within 24 hours); try again "
                            "later, or download model_best.pth.tar in a browser and run 'sdnet export' on it")
    if any(s in low for s in _SIGN_IN) or "accounts.google.com" in page.url:
        return NetworkError(f"Google Drive ({where}) asks to sign in for {what}: the file or folder is not shared "
                            "publicly any more")
    said = " ".join((parsed.caption or parsed.title or "no title").split())[:120]
    return NetworkError(f"Google Drive ({where}) answered {what} with an HTML page (HTTP {page.status}: "
                        f"\"{said}\") instead of the file; try again later, or check SDNET_DRIVE_ENDPOINT")


def list_folder(folder_id: str, scratch: Path, transfer: Transfer) -> list[DriveFile]:
    """The files of a public Drive folder (embedded view, else the folder page's ``_DRIVE_ivd``)."""
    drive, _ = endpoints()
    what = f"the listing of folder {folder_id}"
    session = Session()
    embedded = get(session, f"{drive}/embeddedfolderview?{urlencode({'id': folder_id})}", scratch, transfer)
    discard_part(scratch)
    listed = None
    if isinstance(embedded, Page) and embedded.status == 200 and parse_page(embedded.text).title:
        listed = parse_embedded_listing(embedded.text)
        if listed:
            return listed
    answer = get(session, f"{drive}/drive/folders/{quote(folder_id)}", scratch, transfer)
    discard_part(scratch)
    if not isinstance(answer, Page):
        raise NetworkError(f"{origin(drive)} sent a file for {what}, not a folder page (check SDNET_DRIVE_ENDPOINT)")
    files = parse_ivd_listing(answer.text) if answer.status == 200 else None
    if files is None and listed is None:
        raise _refusal(embedded if isinstance(embedded, Page) and answer.status == 404 else answer, what)
    return files or listed or []


def confirm_url(page: Page, file_id: str) -> str | None:
    """The download URL a virus-scan confirmation page asks for, else ``None``.

    The form ``download-form`` → ``{usercontent}/download?<its hidden inputs>``; a link
    ``…/uc?export=download&confirm=…`` → that path and query on ``{drive}``; a ``download_warning`` cookie →
    ``{drive}/uc?export=download&confirm=<its value>&id=ID``. Hosts named in the page are never contacted.
    """
    drive, usercontent = endpoints()
    parsed = parse_page(page.text)
    if parsed.form and "id" in parsed.form:
        action = urlsplit(parsed.action or "/download")
        base = drive if action.netloc and origin(parsed.action) == origin(drive) else usercontent
        return f"{base}{action.path or '/download'}?{urlencode(parsed.form)}"
    for href, _text in parsed.links:
        link = urlsplit(href)
        if link.path.endswith("/uc") and "export=download" in link.query and "confirm=" in link.query:
            return f"{drive}/uc?{link.query}"
    for name, value in page.cookies:
        if name.startswith("download_warning") and value:
            return f"{drive}/uc?{urlencode({'export': 'download', 'confirm': value, 'id': file_id})}"
    return None


def file_url(file_id: str) -> str:
    """The public download URL of a Drive file (at the endpoint in use)."""
    drive, _ = endpoints()
    return f"{drive}/uc?{urlencode({'export': 'download', 'id': file_id})}"


def download_file(file_id: str, part: Path, transfer: Transfer) -> str:
    """Download the Drive file ``file_id`` into ``part`` (resuming what it holds); returns the URL that served it.

    Follows one confirmation page. Raises :class:`NetworkError` for a rate limit, a sign-in or error page,
    or when the transfer's bounds are spent (``part`` then keeps what arrived, for the next attempt).
    """
    url = file_url(file_id)
    what = f"Drive file {file_id} ({transfer.what})"
    session = Session()
    for _hop in range(2):
        answer = get(session, url, part, transfer)
        if isinstance(answer, FileDone):
            return answer.url
        next_url = confirm_url(answer, file_id)
        if next_url is None:
            raise _refusal(answer, what)
        url = next_url
    raise NetworkError(f"Google Drive ({origin(url)}) answered {what} with a second confirmation page instead of "
                       "the file; try again later")
