"""basemap.redact: secrets out of URLs, texts and log records."""

from __future__ import annotations

import logging

import pytest

from basemap.redact import REDACTED, RedactingFilter, redact_text, redact_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.example.com/v1?token=SECRET", "https://api.example.com/v1?token=REDACTED"),
        ("https://x.blob.core.windows.net/c/B04.tif?st=2024-01-01&se=2024-01-02&sp=rl&sv=2021"
         "&sr=c&skoid=a&sktid=b&skt=c&ske=d&sks=b&skv=2021&sig=ABC%2Fdef%3D",
         "https://x.blob.core.windows.net/c/B04.tif?st=REDACTED&se=REDACTED&sp=REDACTED"
         "&sv=REDACTED&sr=REDACTED&skoid=REDACTED&sktid=REDACTED&skt=REDACTED&ske=REDACTED"
         "&sks=REDACTED&skv=REDACTED&sig=REDACTED"),
        ("https://b.s3.amazonaws.com/k.tif?X-Amz-Algorithm=AWS4-HMAC-SHA256"
         "&X-Amz-Credential=AKIA%2F20240101&X-Amz-Security-Token=TOK&X-Amz-Signature=abc",
         "https://b.s3.amazonaws.com/k.tif?X-Amz-Algorithm=AWS4-HMAC-SHA256"
         "&X-Amz-Credential=REDACTED&X-Amz-Security-Token=REDACTED&X-Amz-Signature=REDACTED"),
        ("https://h/p?AWSAccessKeyId=AK&Signature=s&Expires=1", "https://h/p?AWSAccessKeyId=REDACTED"
         "&Signature=REDACTED&Expires=1"),
        ("https://h/p?key=k&api_key=a&access_token=t&password=p&code=c&page=2&limit=10",
         "https://h/p?key=REDACTED&api_key=REDACTED&access_token=REDACTED&password=REDACTED"
         "&code=REDACTED&page=2&limit=10"),
        ("https://user:pa55@host:8080/stac?collections=a", "https://user:REDACTED@host:8080/stac"
         "?collections=a"),
        ("https://ghp_tok@host/x", "https://REDACTED@host/x"),
        ("https://h/cb#access_token=t&state=1", "https://h/cb#access_token=REDACTED&state=1"),
        ("https://earth-search.aws.element84.com/v1", "https://earth-search.aws.element84.com/v1"),
        ("s3://bucket/prefix/out", "s3://bucket/prefix/out"),
        ("/local/catalog.json", "/local/catalog.json"),
        ("https://h/p?Token=", "https://h/p?Token="),
        ("https://[::1/p?token=x", "https://[::1/p?token=REDACTED"),
    ],
)
def test_redact_url(url, expected):
    assert redact_url(url) == expected


def test_redact_text_pairs_headers_and_urls(monkeypatch):
    monkeypatch.setenv("AWS_SESSION_TOKEN", "IQoJb3JpZ2luX2VjEXAMPLETOKEN")
    text = (
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG "
        "AWS_SESSION_TOKEN=IQoJb3JpZ2luX2VjEXAMPLETOKEN "
        "headers={'X-Amz-Security-Token': b'IQoJb3JpZ2luX2VjEXAMPLETOKEN', 'Authorization': "
        "b'AWS4-HMAC-SHA256 Credential=AKIA/2024, SignedHeaders=host, Signature=f00d'} "
        "Authorization: Bearer eyJhbGciOi\n"
        '{"password": "hunter22", "client_secret":"s3cr3t"} '
        "GET https://h/x?sig=abc&n=1 the raw token IQoJb3JpZ2luX2VjEXAMPLETOKEN again"
    )
    out = redact_text(text)
    for secret in ("wJalrXUtnFEMI", "IQoJb3JpZ2luX2VjEXAMPLETOKEN", "f00d", "eyJhbGciOi",
                   "hunter22", "s3cr3t", "sig=abc"):
        assert secret not in out, (secret, out)
    assert "sig=REDACTED&n=1" in out and "'Authorization': b'REDACTED'" in out
    assert (redact_text("no items in http://h/?token=S3CRET: nothing (see http://h/a?sig=x).")
            == "no items in http://h/?token=REDACTED: nothing (see http://h/a?sig=REDACTED).")
    assert redact_text("found 3 items in 2.5 s, timeout 30") == "found 3 items in 2.5 s, timeout 30"


def test_filter_redacts_message_arguments_and_traceback(monkeypatch):
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            try:
                records.append(self.format(record))
            except TypeError:  # the bad format string below
                records.append("unformattable")

    handler = Keep()
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test_redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("no items in %s", "https://h/api?token=SECRET1")
        try:
            raise ValueError("cannot open https://h/api?token=SECRET2")
        except ValueError:
            logger.exception("failed with AWS_SESSION_TOKEN=%s", "SECRET3")
        logger.warning("bad format %d", "x")  # left to logging's own error handling
    finally:
        logger.removeHandler(handler)
    text = "\n".join(records)
    assert "SECRET" not in text and records[-1] == "unformattable"
    assert records[0] == f"no items in https://h/api?token={REDACTED}"
    assert f"ValueError: cannot open https://h/api?token={REDACTED}" in records[1]
