"""Configuration in one place: every environment variable the package reads, GDAL's settings,
and the defaults shared by the commands.

Environment variables (documented in the README, "Environment variables"):

=========================  =====================================================================
``BASEMAP_SCHEDULER``      address of an existing Dask scheduler (same as ``--scheduler``)
``BASEMAP_WORKER_MEMORY``  memory limit of each local Dask worker process (e.g. ``4GB``)
``BASEMAP_STAC_TIMEOUT``   seconds per STAC API request (default 30)
``BASEMAP_STAC_BACKOFF``   backoff factor between STAC API retries (seconds, doubling; default 1)
``BASEMAP_CPU_BACKEND``    U-Net inference on CPU: ``onnx`` (default, ONNX Runtime) or ``torch``
``BASEMAP_PRECISION``      U-Net precision: ``auto`` (default), ``fp32``, ``bf16``, ``fp16`` (GPU)
``BASEMAP_CACHE``          folder of files derived once and reused (default ``~/.cache/basemap``)
``BASEMAP_ALLOW_VRT``      ``1``: catalog assets may be VRTs (off: a VRT could wrap any local file)
``AWS_ENDPOINT_URL_S3``,   the S3 endpoint of ``s3://`` outputs (MinIO, SeaweedFS, ...); the
``AWS_ENDPOINT_URL``       credentials themselves are read by botocore, never by this package
``AWS_REGION``,            the S3 region
``AWS_DEFAULT_REGION``
``BASEMAP_SOURCES``, ...  the archives' variables (:mod:`basemap.read.access`, docs/sources.md):
                           ``BASEMAP_PC_SAS_URL``, ``PC_SDK_SUBSCRIPTION_KEY``, ``CDSE_S3_*``,
                           ``BASEMAP_INPUT_S3_ENDPOINT``, ``BASEMAP_INPUT_S3_REQUESTER_PAYS``
``GDAL_*``, ``VSI_CACHE``  any key of :data:`GDAL_ENV` set in the environment overrides it
=========================  =====================================================================
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path

#: Environment variable naming an existing Dask scheduler (same as ``--scheduler``).
SCHEDULER_ENV = "BASEMAP_SCHEDULER"
#: Environment variable: memory limit of each local worker process (Dask syntax, e.g. "4GB").
MEMORY_ENV = "BASEMAP_WORKER_MEMORY"
STAC_TIMEOUT_ENV = "BASEMAP_STAC_TIMEOUT"
STAC_BACKOFF_ENV = "BASEMAP_STAC_BACKOFF"
CPU_BACKEND_ENV = "BASEMAP_CPU_BACKEND"
PRECISION_ENV = "BASEMAP_PRECISION"
CACHE_ENV = "BASEMAP_CACHE"
ALLOW_VRT_ENV = "BASEMAP_ALLOW_VRT"
THREADS_ENV = "OMP_NUM_THREADS"
SOURCES_ENV = "BASEMAP_SOURCES"
PC_SAS_URL_ENV = "BASEMAP_PC_SAS_URL"
PC_KEY_ENV = "PC_SDK_SUBSCRIPTION_KEY"
INPUT_S3_ENDPOINT_ENV = "BASEMAP_INPUT_S3_ENDPOINT"
INPUT_S3_REQUESTER_PAYS_ENV = "BASEMAP_INPUT_S3_REQUESTER_PAYS"
CDSE_ENDPOINT_ENV = "CDSE_S3_ENDPOINT"
CDSE_KEY_ENV = "CDSE_S3_ACCESS_KEY"
CDSE_SECRET_ENV = "CDSE_S3_SECRET_KEY"

#: Every variable read here, with what it means (the README's table is checked against it).
ENVIRONMENT = {
    SCHEDULER_ENV: "address of an existing Dask scheduler, e.g. tcp://host:8786 (= --scheduler)",
    MEMORY_ENV: "memory limit of each local Dask worker process, e.g. 4GB (default: Dask's share)",
    STAC_TIMEOUT_ENV: "seconds per STAC API request (default 30)",
    STAC_BACKOFF_ENV: "backoff factor between STAC API retries, seconds, doubling (default 1)",
    CPU_BACKEND_ENV: "U-Net inference on CPU: onnx (default, ONNX Runtime) or torch (reference)",
    PRECISION_ENV: "U-Net precision: auto (default: bf16 where the device has it, else fp32 on "
                   "CPU, fp16 on a GPU), fp32, bf16 or fp16 (GPU only)",
    CACHE_ENV: "folder of files derived once and reused, e.g. the U-Net's ONNX export (default "
               "~/.cache/basemap; empty: none)",
    ALLOW_VRT_ENV: "1: catalog assets may be GDAL VRTs (default: refused, a VRT can wrap any "
                   "local file)",
    THREADS_ENV: "threads of CPU inference (default: the physical cores; Dask workers: 1)",
    SOURCES_ENV: "JSON file of extra source profiles (docs/sources.md)",
    PC_SAS_URL_ENV: "Planetary Computer's SAS token API (default "
                    "https://planetarycomputer.microsoft.com/api/sas/v1/token)",
    PC_KEY_ENV: "Planetary Computer subscription key, sent to its token API when set",
    INPUT_S3_ENDPOINT_ENV: "S3 endpoint URL of s3:// inputs (default AWS; not the output's)",
    INPUT_S3_REQUESTER_PAYS_ENV: "1: read s3:// inputs of public archives as requester-pays "
                                 "(with AWS credentials); default anonymous",
    CDSE_ENDPOINT_ENV: "CDSE's S3 endpoint URL (default https://eodata.dataspace.copernicus.eu)",
    CDSE_KEY_ENV: "CDSE S3 access key (s3://eodata inputs)",
    CDSE_SECRET_ENV: "CDSE S3 secret key",
    "AWS_ENDPOINT_URL_S3": "S3 endpoint of s3:// outputs (wins over AWS_ENDPOINT_URL)",
    "AWS_ENDPOINT_URL": "S3 endpoint of s3:// outputs (MinIO, SeaweedFS, ...)",
    "AWS_REGION": "S3 region (else AWS_DEFAULT_REGION)",
    "AWS_DEFAULT_REGION": "S3 region",
}

# ---- defaults shared by the commands --------------------------------------------------------

#: Processing block side in max-zoom pixels: `basemap build`, `basemap plan` and `basemap tiles`.
BLOCK_SIZE = 2048
#: U-Net window side and overlap (px on the global grid); the shipped model is trained for them.
WINDOW = 512
OVERLAP = 64
#: Footprint-edge ramp (px) of the observations' quality (`--feather`).
FEATHER = 64
#: Read regions are aligned to it (global px, a multiple of the warp's 64-px lattice).
CHUNK = 128
#: Default STAC API (``--stac`` not given) and its collection.
EARTH_SEARCH_URL = "https://earth-search.aws.element84.com/v1"
EARTH_SEARCH_COLLECTION = "sentinel-2-c1-l2a"
#: The weights shipped with the package (``basemap.model``, installed from model/), found without
#: importing torch.
DEFAULT_WEIGHTS = Path(find_spec("basemap.model").submodule_search_locations[0]) / "default.pt"


def weights_path(model: str | os.PathLike | None) -> Path:
    """The U-Net weights file of a ``--model`` value (None: the shipped default)."""
    return Path(model) if model else DEFAULT_WEIGHTS


# ---- GDAL -----------------------------------------------------------------------------------

#: GDAL configuration for every read, in one place (applied with ``rasterio.Env`` per block task
#: and exported to the environment of each Dask worker by :mod:`basemap.pipeline.graph`). Any of
# these : set in the environment wins (see :func:`gdal_env`): e.g. ``GDAL_HTTP_TIMEOUT=5`` in tests.
GDAL_ENV: dict[str, str | int] = {
    # Opening /vsicurl/ files: don't list the remote folder first (one request saved per file).
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    # HTTP retry policy (docs/reliability.md rows 8, 9, 11): GDAL retries each request answered
    # 429, 500, 502, 503 or 504, or timed out, up to MAX_RETRY times, waiting RETRY_DELAY seconds
    # first and then each wait times 2 to 2.5 (exponential backoff with random jitter): at most
    # 1 + 2.5 + 6.3 + 15.6 s before a request gives up. Then the asset's error fails its block
    # (a rerun retries it). 404 is never retried: the scene is skipped, the block is degraded.
    "GDAL_HTTP_MAX_RETRY": "4",
    "GDAL_HTTP_RETRY_DELAY": "1",
    # A server that accepts and never answers: each attempt gives up after these many seconds.
    "GDAL_HTTP_TIMEOUT": "60",
    "GDAL_HTTP_CONNECTTIMEOUT": "15",
    # Fewer round trips for the windowed reads of COG tiles.
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "VSI_CACHE": "TRUE",
    # Block cache per worker process (MB); one task at a time per worker.
    "GDAL_CACHEMAX": 256,
    # One thread per worker process: parallelism comes from Dask.
    "GDAL_NUM_THREADS": "1",
}


def count_network_reads() -> None:
    """Have GDAL count the requests and bytes of each remote file (:mod:`basemap.read.traffic`):
    ``CPL_VSIL_NETWORK_STATS_ENABLED``, which GDAL reads once, at the first network access of
    the process, so it is set in the environment (a user's value wins)."""
    os.environ.setdefault("CPL_VSIL_NETWORK_STATS_ENABLED", "YES")


def gdal_env() -> dict[str, str | int]:
    """:data:`GDAL_ENV`, each value overridden by an environment variable of the same name."""
    return {k: type(v)(os.environ[k]) if k in os.environ else v for k, v in GDAL_ENV.items()}


#: Settings of :data:`GDAL_ENV` meant for remote files only (http, https, s3, ``/vsicurl/``...):
#: not listing the folder of a remote file saves a request, but for a local file it hides the
#: sidecars GDAL would honour (``.aux.xml`` georeferencing, ``.ovr`` overviews, ``.msk`` masks).
REMOTE_ONLY_GDAL_ENV = ("GDAL_DISABLE_READDIR_ON_OPEN",)
#: What a local open sets instead (a worker's environment holds the remote values).
LOCAL_OPEN_ENV: dict[str, str] = {"GDAL_DISABLE_READDIR_ON_OPEN": "FALSE"}
_REMOTE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://|/vsi(curl|s3|gs|az|adls|oss|swift|webhdfs))")


def is_remote(href: str) -> bool:
    """Whether ``href`` is read over the network (a URL or a GDAL network file system)."""
    return bool(_REMOTE.match(str(href))) and not str(href).startswith("file://")


def open_env(href: str) -> dict[str, str | int]:
    """GDAL settings to open ``href`` with: the remote-only ones for a remote file, GDAL's own
    behaviour (sidecars honoured) for a local one."""
    if is_remote(href):
        env = gdal_env()
        return {k: env[k] for k in REMOTE_ONLY_GDAL_ENV}
    return dict(LOCAL_OPEN_ENV)


def export_env(values: dict, threads: int | None = None) -> None:
    """Put settings into this process's environment (GDAL settings for a worker process), and
    default OpenMP to ``threads`` threads (before torch is imported)."""
    os.environ.update({k: str(v) for k, v in values.items()})
    if threads is not None:
        os.environ.setdefault(THREADS_ENV, str(threads))


# ---- the variables ----------------------------------------------------------------------------


def scheduler_address(given: str | None = None) -> str | None:
    """``--scheduler``, else ``$BASEMAP_SCHEDULER``, else None (a local cluster)."""
    return given or os.environ.get(SCHEDULER_ENV) or None


def worker_memory() -> str:
    """Memory limit of each local worker process (``$BASEMAP_WORKER_MEMORY``, default "auto")."""
    return os.environ.get(MEMORY_ENV, "auto")


def stac_timeout() -> float:
    """Seconds per STAC API request."""
    return float(os.environ.get(STAC_TIMEOUT_ENV, 30.0))


def stac_backoff() -> float:
    """urllib3 backoff factor between STAC API retries."""
    return float(os.environ.get(STAC_BACKOFF_ENV, 1.0))


def cpu_backend() -> str:
    """``onnx`` or ``torch``: how the U-Net runs on CPU."""
    return os.environ.get(CPU_BACKEND_ENV, "onnx")


def precision() -> str:
    """``BASEMAP_PRECISION``: the U-Net's number format (:mod:`basemap.render.precision`)."""
    return os.environ.get(PRECISION_ENV, "auto").strip().lower() or "auto"


def inference_threads() -> int | None:
    """``OMP_NUM_THREADS`` when it is a positive integer: the threads of CPU inference."""
    try:
        value = int(os.environ.get(THREADS_ENV, ""))
    except ValueError:
        return None
    return value if value > 0 else None


def cache_dir() -> Path | None:
    """Where derived files are kept between runs (None: ``BASEMAP_CACHE`` is set empty)."""
    value = os.environ.get(CACHE_ENV)
    if value is None:
        return Path.home() / ".cache" / "basemap"
    return Path(value) if value else None


def allow_vrt() -> bool:
    """Whether ``BASEMAP_ALLOW_VRT=1``: catalog assets may be opened with GDAL's VRT driver."""
    return os.environ.get(ALLOW_VRT_ENV, "").strip() == "1"


def sources_file() -> str | None:
    """The JSON file of extra source profiles, or None."""
    return os.environ.get(SOURCES_ENV) or None


def pc_sas_url() -> str:
    """Planetary Computer's token API (``GET {url}/{collection}``)."""
    return (os.environ.get(PC_SAS_URL_ENV)
            or "https://planetarycomputer.microsoft.com/api/sas/v1/token")


def pc_subscription_key() -> str | None:
    """Planetary Computer's subscription key, or None."""
    return os.environ.get(PC_KEY_ENV) or None


def input_s3_endpoint() -> str | None:
    """The S3 endpoint URL of ``s3://`` inputs of public archives, or None (AWS)."""
    return os.environ.get(INPUT_S3_ENDPOINT_ENV) or None


def input_s3_requester_pays() -> bool:
    """Whether public archives' ``s3://`` inputs are read as requester-pays."""
    return os.environ.get(INPUT_S3_REQUESTER_PAYS_ENV, "").lower() in ("1", "yes", "true")


def cdse_s3() -> tuple[str, str | None, str | None]:
    """(endpoint URL, access key, secret key) of CDSE's S3 (the keys None when unset)."""
    return (os.environ.get(CDSE_ENDPOINT_ENV) or "https://eodata.dataspace.copernicus.eu",
            os.environ.get(CDSE_KEY_ENV) or None, os.environ.get(CDSE_SECRET_ENV) or None)


def environment_values(is_secret: Callable[[str], bool], min_length: int) -> list[str]:
    """Values (at least ``min_length`` long) of the variables whose names ``is_secret`` picks,
    longest first: what a log must never show."""
    values = {v for k, v in os.environ.items() if is_secret(k) and len(v) >= min_length}
    return sorted(values, key=len, reverse=True)


def s3_endpoint() -> str | None:
    """The S3 endpoint URL of ``s3://`` outputs, or None (AWS)."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def s3_region() -> str | None:
    """The S3 region, or None."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
