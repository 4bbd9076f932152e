"""basemap.config: the one place that reads environment variables; GDAL settings; defaults."""

from pathlib import Path

from basemap import config


def test_gdal_env_is_overridden_by_the_environment(monkeypatch):
    monkeypatch.delenv("GDAL_HTTP_TIMEOUT", raising=False)
    assert config.gdal_env()["GDAL_HTTP_TIMEOUT"] == "60"
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "5")
    monkeypatch.setenv("GDAL_CACHEMAX", "64")
    env = config.gdal_env()
    assert env["GDAL_HTTP_TIMEOUT"] == "5" and env["GDAL_CACHEMAX"] == 64  # types kept
    assert set(env) == set(config.GDAL_ENV)


def test_variables_and_their_defaults(monkeypatch):
    for name in config.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    assert config.scheduler_address() is None
    assert config.scheduler_address("tcp://a:1") == "tcp://a:1"
    assert (config.worker_memory(), config.cpu_backend()) == ("auto", "onnx")
    assert (config.stac_timeout(), config.stac_backoff()) == (30.0, 1.0)
    assert config.s3_endpoint() is None and config.s3_region() is None
    monkeypatch.setenv("BASEMAP_SCHEDULER", "tcp://b:2")
    monkeypatch.setenv("BASEMAP_CPU_BACKEND", "torch")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://x")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://s3")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu")
    assert config.scheduler_address() == "tcp://b:2" and config.cpu_backend() == "torch"
    assert config.s3_endpoint() == "http://s3" and config.s3_region() == "eu"


def test_export_env_sets_values_and_defaults_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("GDAL_NUM_THREADS", raising=False)
    config.export_env({"GDAL_NUM_THREADS": 1}, threads=1)
    assert config.gdal_env()["GDAL_NUM_THREADS"] == "1"
    import os

    assert os.environ["OMP_NUM_THREADS"] == "1"


def test_the_shipped_weights_are_found_without_torch():
    assert config.DEFAULT_WEIGHTS.is_file()
    assert config.weights_path(None) == config.DEFAULT_WEIGHTS
    assert config.weights_path("w.pt") == Path("w.pt")


def test_one_block_size_for_plan_build_and_tiles():
    import inspect

    from basemap.pipeline.plan import BuildSettings
    from basemap.tools.tile_raster import make_tiles
    from basemap.world.plan import plan

    assert BuildSettings().block_size == config.BLOCK_SIZE
    assert inspect.signature(plan).parameters["block_size"].default == config.BLOCK_SIZE
    assert inspect.signature(make_tiles).parameters["block_size"].default == config.BLOCK_SIZE
