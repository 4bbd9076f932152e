"""basemap.read.access against a local stand-in of Planetary Computer's token API: a busy API is
asked again; a token is reused until near its expiry, then renewed (issue 30)."""

import time
from datetime import datetime

import pytest

from basemap.errors import AuthError
from basemap.read import access
from tests.support.archives import TokenServer


@pytest.fixture
def tokens(monkeypatch):
    with TokenServer(lifetime=2) as server:
        monkeypatch.setenv("BASEMAP_PC_SAS_URL", server.url)
        access.forget_token("sentinel-2-l2a")
        yield server
    access.forget_token("sentinel-2-l2a")


def test_a_busy_token_api_is_asked_again(tokens):
    """Before: one 503 from the token API failed the run (exit 2) or the block."""
    tokens.busy = 2
    assert "sig=" in access.pc_token("sentinel-2-l2a")
    assert len(tokens.issued) == 1 and tokens.busy == 0


def test_a_token_is_reused_then_renewed_before_it_expires(tokens):
    first = access.pc_token("sentinel-2-l2a")
    assert access.pc_token("sentinel-2-l2a") == first and len(tokens.issued) == 1
    expiry = datetime.fromisoformat(tokens.issued[-1][2].replace("Z", "+00:00")).timestamp()
    time.sleep(max(0.0, expiry - time.time() - 0.1))  # under a tenth of its life left: renewed
    assert access.pc_token("sentinel-2-l2a") != first and len(tokens.issued) == 2


def test_a_token_api_that_stays_busy_is_an_auth_error_naming_the_variable(tokens):
    tokens.busy = 10
    with pytest.raises(AuthError, match="BASEMAP_PC_SAS_URL"):
        access.pc_token("sentinel-2-l2a")
