"""Shared fixtures: a small synthetic data set, built once per test session. Nothing is downloaded."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    import data

    out = str(tmp_path_factory.mktemp("synth"))
    data.synth(out, 28, 12, seed=3, cfg=data.SynthConfig(image_frac=0.2))
    return out


def pytest_configure(config):
    config.addinivalue_line("markers", "benchmark: slow measurements that print numbers; run with `pytest -m benchmark`")


def pytest_collection_modifyitems(config, items):
    """Benchmarks run only when asked for with -m benchmark, so the default suite stays fast."""
    if "benchmark" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="benchmark: run with -m benchmark")
    for item in items:
        if "benchmark" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """The built-in tiny Qwen2.5-VL (seed 0), written once per session."""
    import model

    return model.build_tiny(tmp_path_factory.mktemp("tiny") / "qwen-tiny", seed=0)
