"""Secrets out of what the pipeline records and prints: URLs, log records, error messages.

* :func:`redact_url`: the values of secret-looking query (and fragment) keys -- ``token``,
  ``sig``, ``X-Amz-Signature``, ``X-Amz-Security-Token``, Azure SAS fields, ``code``, ... -- and
  the password of ``user:password@`` become ``REDACTED``; everything else is kept byte for byte.
* :func:`redact_text`: every URL in a text as above, ``NAME=value`` / ``"name": "value"`` /
  ``Name: value`` pairs whose name looks secret (``AWS_SECRET_ACCESS_KEY``,
  ``AWS_SESSION_TOKEN``, ``Authorization``, ...), and the values of the secret-looking
  variables of this process's environment.
* :class:`RedactingFilter`: a logging filter applying :func:`redact_text` to every record (the
  CLI installs it on the root logger's handlers).
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

from basemap import config

#: What a secret is replaced with.
REDACTED = "REDACTED"
#: Query keys that are secret (compared in lower case): signatures, tokens, keys, Azure SAS.
SECRET_QUERY_KEYS = frozenset({
    "token", "access_token", "id_token", "refresh_token", "sig", "signature", "code", "key",
    "api_key", "apikey", "password", "pass", "pwd", "secret", "client_secret", "auth",
    "authorization", "subscription-key", "subscription_key", "x-amz-signature",
    "x-amz-credential", "x-amz-security-token", "awsaccesskeyid", "x-goog-signature",
    "x-goog-credential", "googleaccessid",
    # Azure SAS fields
    "se", "st", "sp", "sv", "sr", "spr", "sip", "ss", "srt", "skoid", "sktid", "skt", "ske",
    "sks", "skv", "saoid", "suoid", "scid",
})
#: Parts of a name that make it secret (query keys, NAME=value pairs, environment variables).
_SECRET_WORDS = r"token|secret|passw(?:or)?d|signature|credential|authorization|api[-_]?key"
_SECRET_WORD = re.compile(_SECRET_WORDS, re.IGNORECASE)
_SECRET_ENV = re.compile(rf"{_SECRET_WORDS}|subscription_key|private_key|sas\b", re.IGNORECASE)
#: Environment values shorter than this are not searched for in texts (too likely to be words).
MIN_SECRET_LENGTH = 8

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>.,;:!?)\]}]")
_USERINFO = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<info>[^/?#@\s]*)@")
_QUERY_PAIR = re.compile(r"(?P<pre>[?&;#])(?P<key>[^=&;#?\s]+)=(?P<value>[^&;#\s]*)")
_PAIR = re.compile(
    rf"""(?P<key>['"]?[\w.-]*(?:{_SECRET_WORDS})[\w.-]*['"]?)"""
    r"""(?P<sep>\s*[:=]\s*(?:b(?=['"]))?)"""
    r"""(?P<value>'[^']*'|"[^"]*"|"""
    r"""(?:(?:Bearer|Basic|Token|Digest|AWS4-HMAC-SHA256)\s+)?[^\s,;&'"}\]]*[^\s,;&'"}\]:.!?)])""",
    re.IGNORECASE,
)


def _secret_key(key: str) -> bool:
    name = unquote_plus(key).strip().lower()
    return name in SECRET_QUERY_KEYS or bool(_SECRET_WORD.search(name))


def redact_url(url: str) -> str:
    """``url`` with the values of secret query/fragment keys and any password replaced."""
    url = _USERINFO.sub(_redact_userinfo, url, count=1)
    cut = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=-1)
    if cut < 0:
        return url
    tail = _QUERY_PAIR.sub(
        lambda m: (f"{m['pre']}{m['key']}={REDACTED}" if _secret_key(m["key"]) and m["value"]
                   else m[0]),
        url[cut:],
    )
    return url[:cut] + tail


def _redact_userinfo(match: re.Match) -> str:
    user, colon, _ = match["info"].partition(":")
    return f"{match['scheme']}{user}:{REDACTED}@" if colon else f"{match['scheme']}{REDACTED}@"


def _redact_pair(match: re.Match) -> str:
    value = match["value"]
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match['key']}{match['sep']}{quote}{REDACTED}{quote}"


def secret_environment_values() -> list[str]:
    """Values of this process's secret-looking environment variables (longest first)."""
    return config.environment_values(lambda name: bool(_SECRET_ENV.search(name)),
                                     MIN_SECRET_LENGTH)


def redact_text(text: str) -> str:
    """``text`` with URLs redacted (:func:`redact_url`), secret-looking ``name=value`` pairs and
    the values of secret environment variables replaced by ``REDACTED``."""
    text = _URL.sub(lambda m: redact_url(m[0]), text)
    text = _PAIR.sub(_redact_pair, text)
    for value in secret_environment_values():
        text = text.replace(value, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each log record (message, arguments, traceback) with :func:`redact_text`."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: left to the handler, which reports it
            return True
        record.msg, record.args = redact_text(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True
