"""How an asset of an archive is reached: signed hrefs and S3 settings, per source profile.

The manifest keeps hrefs as the catalog gives them (unsigned); they are made readable here, at
read time, in the process that reads them:

* Planetary Computer: a SAS token per collection from its token API
  (:func:`basemap.config.pc_sas_url`), appended to the href; a token is used until
  :data:`TOKEN_MARGIN_S` before its expiry, and dropped after a 403 (:func:`forget_token`), so a
  run of hours never reads with an expired one.
* ``s3://`` hrefs: GDAL's ``/vsis3/`` with the profile's settings: CDSE's endpoint and keys
  (``CDSE_S3_*``); anonymous for public buckets (Earth Search), requester-pays on request
  (``BASEMAP_INPUT_S3_*``). These are the inputs' settings; the output's S3 settings are
  botocore's (``AWS_ENDPOINT_URL_S3``, ...) and never mix with them.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from basemap import config
from basemap.errors import AuthError
from basemap.stac.sources import SourceProfile, profile_named, unsigned

log = logging.getLogger(__name__)

#: A token is renewed when it has less than this left (seconds), or a tenth of its life.
TOKEN_MARGIN_S = 300.0

_tokens: dict[str, tuple[str, float, float]] = {}  # collection -> (token, expiry, lifetime)
_lock = threading.Lock()


def pc_token(collection: str) -> str:
    """A valid SAS token of a Planetary Computer collection (cached until near its expiry).

    Raises:
        AuthError: the token API cannot be reached or refuses (exit 2 at the preflight).
    """
    now = time.time()
    with _lock:
        cached = _tokens.get(collection)
        if cached and cached[1] - now > min(TOKEN_MARGIN_S, cached[2] / 10):
            return cached[0]
        token, expiry = _fetch_token(collection)
        _tokens[collection] = (token, expiry, max(expiry - now, 0.0))
        return token


def _fetch_token(collection: str) -> tuple[str, float]:
    url = f"{config.pc_sas_url()}/{collection}"
    key = config.pc_subscription_key()
    headers = {"Ocp-Apim-Subscription-Key": key} if key else {}
    session = requests.Session()  # a busy token API (429, 5xx) is asked again, 3 times at most
    session.mount(url.split("/")[0] + "//", HTTPAdapter(max_retries=Retry(
        total=3, connect=1, backoff_factor=1, status_forcelist=[429, 500, 502, 503, 504])))
    try:
        r = session.get(url, headers=headers, timeout=30)
        r.raise_for_status()
        doc = r.json()
        expiry = datetime.fromisoformat(doc["msft:expiry"].replace("Z", "+00:00"))
        if expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=timezone.utc)
        log.debug("SAS token for %s valid until %s", collection, expiry)
        return str(doc["token"]).lstrip("?"), expiry.timestamp()
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        raise AuthError(
            f"cannot sign Planetary Computer hrefs: the token API {url} failed ({exc}). "
            + profile_named("planetary-computer").auth_hint
        ) from None


def forget_token(collection: str) -> None:
    """Drop a collection's token (after a 403: the next read fetches a fresh one)."""
    with _lock:
        _tokens.pop(collection, None)


def readable_href(href: str, source: str, collection: str) -> str:
    """The href to open: signed for Planetary Computer, as given otherwise."""
    if profile_named(source).signing == "planetary-computer" and href.startswith(
            ("http://", "https://")):
        plain = unsigned(href)
        return f"{plain}{'&' if urlsplit(plain).query else '?'}{pc_token(collection)}"
    return href


def _endpoint_options(url: str) -> dict[str, str]:
    parts = urlsplit(url if "://" in url else f"https://{url}")
    return {"AWS_S3_ENDPOINT": parts.netloc, "AWS_HTTPS": "NO" if parts.scheme == "http" else
            "YES", "AWS_VIRTUAL_HOSTING": "FALSE"}


def s3_options(source: str) -> dict[str, str]:
    """GDAL settings to read a profile's ``s3://`` hrefs (see the module docstring).

    Raises:
        AuthError: CDSE hrefs without CDSE keys.
    """
    profile: SourceProfile = profile_named(source)
    if profile.s3 == "cdse":
        endpoint, key, secret = config.cdse_s3()
        if not key or not secret:
            raise AuthError(f"{profile.title}: no credentials. {profile.auth_hint}")
        return {**_endpoint_options(endpoint), "AWS_ACCESS_KEY_ID": key,
                "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": "",
                "AWS_NO_SIGN_REQUEST": "NO"}
    options: dict[str, str] = {}
    if config.input_s3_endpoint():
        options.update(_endpoint_options(config.input_s3_endpoint()))
    if profile.s3 == "anonymous":
        options.update({"AWS_REQUEST_PAYER": "requester"} if config.input_s3_requester_pays()
                       else {"AWS_NO_SIGN_REQUEST": "YES"})
    return options
