"""Every cache of the package lives under one root, one folder per kind."""
import pytest

from stylegan import cache_dirs
from stylegan.download import download_cache_dir
from stylegan.metrics.feature_stats import metrics_cache_dir
from stylegan.ops import build
from stylegan.training.dataset import default_cache_dir


@pytest.fixture
def clean_env(monkeypatch):
    for name in (cache_dirs.CACHE_ENV, cache_dirs.LEGACY_DATASET_ENV, "XDG_CACHE_HOME", "STYLEGAN_DOWNLOAD_DIR"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def all_caches():
    return build.cache_dir(), default_cache_dir(), metrics_cache_dir(), download_cache_dir()


def test_one_root_one_folder_per_kind(clean_env, tmp_path):
    clean_env.setenv(cache_dirs.CACHE_ENV, str(tmp_path))
    assert all_caches() == tuple(tmp_path / kind for kind in ("ops", "datasets", "metrics", "downloads"))


def test_xdg_then_home(clean_env, tmp_path):
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert all_caches()[1] == tmp_path / "stylegan" / "datasets"
    clean_env.delenv("XDG_CACHE_HOME")
    clean_env.setenv("HOME", str(tmp_path / "home"))
    assert all_caches()[2] == tmp_path / "home" / ".cache" / "stylegan" / "metrics"


def test_old_dataset_variable_still_works_with_a_warning(clean_env, tmp_path):
    clean_env.setenv(cache_dirs.LEGACY_DATASET_ENV, str(tmp_path))
    with pytest.warns(DeprecationWarning, match=cache_dirs.CACHE_ENV):
        assert default_cache_dir() == tmp_path / "datasets"
    clean_env.setenv(cache_dirs.CACHE_ENV, str(tmp_path / "new"))
    assert default_cache_dir() == tmp_path / "new" / "datasets"
