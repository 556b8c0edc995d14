"""Visitor text ids: the documented sha256 definition, whether memoised or not."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

import p2pmkt.chain.contract_api as api
from p2pmkt.chain.contract_api import text_id, text_ids


def _reference(tag: bytes, text: str) -> int:
    if not text:
        return 0
    return int.from_bytes(hashlib.sha256(tag + text.encode("utf-8")).digest()[:8], "little") or 1


@given(tag=st.sampled_from([b"a", b"i", b"t"]), texts=st.lists(st.text(max_size=20), max_size=30))
def test_text_ids_match_the_definition_one_by_one_and_in_bulk(tag: bytes, texts: list[str]) -> None:
    expected = [_reference(tag, t) for t in texts]
    assert text_ids(tag, texts) == expected
    assert [text_id(tag, t) for t in texts] == expected
    assert text_ids(tag, texts) == expected  # now from the memo


def test_a_full_memo_is_emptied_and_ids_stay_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "_TEXT_IDS_MAX", 8)
    texts = [f"user{i}" for i in range(20)]
    assert text_ids(b"a", texts) == [_reference(b"a", t) for t in texts]
    assert len(api._TEXT_IDS[b"a"]) <= 8  # emptied once it passed the bound
    assert text_ids(b"a", texts[:3]) == [_reference(b"a", t) for t in texts[:3]]


def test_tags_separate_the_same_text() -> None:
    assert len({text_id(b"a", "x"), text_id(b"i", "x"), text_id(b"t", "x")}) == 3
    assert text_id(b"a", "") == 0
