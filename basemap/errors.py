"""One exception hierarchy for the whole pipeline; each class carries its CLI exit code.

Exit codes (see README, "Exit codes"):
    0  complete
    1  fatal error (BasemapError and anything unexpected)
    2  usage or configuration error: nothing was written
    3  finished, but some blocks failed (listed; a rerun retries only those)
"""

from __future__ import annotations


class BasemapError(Exception):
    """Base class of every error the pipeline raises on purpose."""

    exit_code = 1


class InputError(BasemapError, ValueError):
    """Bad user input (bbox, zoom, option values): exit 2 before any network call."""

    exit_code = 2


class ConfigError(BasemapError):
    """The environment or output cannot be used as configured (unwritable output, missing file)."""

    exit_code = 2


class StacError(BasemapError):
    """A STAC source could not be read, or a search failed after retries."""


class AssetError(BasemapError):
    """An asset (a COG) could not be read: missing, truncated, corrupt or of an unexpected dtype."""


class WeightsError(BasemapError):
    """Model weights missing, corrupt, or of another architecture."""

    exit_code = 2


class UnusableAssetError(InputError, AssetError):
    """An asset that opens but cannot be used as given (no CRS, unexpected dtype or band count,
    no GDAL driver for its format): exit 2, the message names the href and the fix."""


class MissingAssetError(AssetError):
    """An asset does not exist (HTTP 404 or no such file): skipped, the block is degraded."""


class AuthError(AssetError):
    """An archive refused an asset (HTTP 401/403/409, S3 access denied) or its hrefs cannot be
    signed: exit 2 at the preflight, naming what to set; mid-run, the block fails with it."""

    exit_code = 2


class InvalidCOGError(BasemapError):
    """A COG failed rio-cogeo validation; it is not published (a block with it fails)."""


class LeaseHeldError(ConfigError):
    """Another run holds the output's lease."""


class PreconditionFailed(FileExistsError):
    """A create-only write (S3 ``If-None-Match: *``) found the key already there."""


class PartialBuildError(BasemapError):
    """The build finished, but some blocks failed; they are listed and a rerun retries them."""

    exit_code = 3


class BasemapWarning(UserWarning):
    """Base class of the pipeline's warnings (clamped latitudes, skipped items, ...)."""
