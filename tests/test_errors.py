"""basemap.errors: one hierarchy, each class with its CLI exit code."""

import pytest

from basemap import errors


@pytest.mark.parametrize(("cls", "code"), [
    (errors.BasemapError, 1), (errors.InputError, 2), (errors.ConfigError, 2),
    (errors.WeightsError, 2), (errors.LeaseHeldError, 2), (errors.PartialBuildError, 3),
    (errors.StacError, 1), (errors.AssetError, 1), (errors.MissingAssetError, 1),
    (errors.InvalidCOGError, 1),
])
def test_exit_codes(cls, code):
    assert issubclass(cls, errors.BasemapError) and cls.exit_code == code


def test_builtin_bases_where_they_fit():
    assert issubclass(errors.InputError, ValueError)
    assert issubclass(errors.MissingAssetError, errors.AssetError)
    assert issubclass(errors.PreconditionFailed, FileExistsError)  # the lease catches both
    assert issubclass(errors.BasemapWarning, UserWarning)
