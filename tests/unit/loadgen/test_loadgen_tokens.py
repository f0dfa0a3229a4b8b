"""Token counting without ``usage``: a tokenizer found locally (file, folder, or a model id in
the Hugging Face cache, offline), else an estimate that does not undercount CJK text."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace

from open_autoglm.loadgen import ConfigError, cached_tokenizer, make_token_counter
from open_autoglm.loadgen._tokens import SimpleTokenCounter, hf_cache_dir


def tiny_tokenizer(path: Path) -> Path:
    """A real ``tokenizer.json``: whole words from a five-word vocabulary."""
    vocab = {"[UNK]": 0, "hello": 1, "world": 2, "again": 3, "!": 4}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()  # type: ignore[assignment]
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(path))
    return path


def hf_cache(root: Path, model_id: str, revision: str = "abc123") -> Path:
    """The layout ``huggingface_hub`` leaves: refs/main names the snapshot."""
    repo = root / ("models--" + model_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    return tiny_tokenizer(repo / "snapshots" / revision / "tokenizer.json")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Hello, world!", 4), ("你好" * 10, 20), ("abc你好def", 4), ("こんにちは", 5),
     ("안녕하세요", 5), ("", 0)],
)  # fmt: skip
def test_the_estimate_counts_cjk_characters(text: str, expected: int) -> None:
    assert SimpleTokenCounter().count(text) == expected
    assert SimpleTokenCounter.exact is False


def test_a_tokenizer_file_or_folder(tmp_path: Path) -> None:
    path = tiny_tokenizer(tmp_path / "tok" / "tokenizer.json")
    for where in (path, path.parent, str(path)):
        counter = make_token_counter(where)
        assert counter.exact
        assert counter.count("hello world again!") == 4
        assert counter.name == str(path)


def test_a_model_id_in_the_local_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    path = hf_cache(tmp_path / "hub", "Org/Tiny-Model")
    assert cached_tokenizer("Org/Tiny-Model") == path
    counter = make_token_counter(Path("Org/Tiny-Model"))  # as the CLI's type=Path gives it
    assert counter.exact
    assert counter.count("hello hello") == 2
    assert counter.name == str(path)


def test_hf_home_and_the_default_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert hf_cache_dir() == tmp_path / "hf" / "hub"
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hf_cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"


def test_a_snapshot_without_refs_main_is_still_found(tmp_path: Path) -> None:
    path = hf_cache(tmp_path, "a/b")
    (tmp_path / "models--a--b" / "refs" / "main").unlink()
    assert cached_tokenizer("a/b", tmp_path) == path


@pytest.mark.parametrize("name", ["not-an-id", "a/b/c", "/abs/path/x", "missing/model"])
def test_an_unknown_tokenizer_is_a_clear_config_error(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ConfigError, match="tokenizer not found"):
        make_token_counter(name)


def test_no_tokenizer_is_the_estimate() -> None:
    counter = make_token_counter(None)
    assert (counter.name, counter.exact) == ("simple", False)
