"""hybrid.llm.backend._one_gguf_parse patches the ``gguf`` module: concurrent loads take turns and
no nesting or interleaving leaves a memoised stand-in installed."""

from __future__ import annotations

import threading
import time

import pytest

gguf = pytest.importorskip("gguf")

from hybrid.llm.backend import _one_gguf_parse  # noqa: E402


def test_two_threads_take_turns_and_the_originals_come_back() -> None:
    originals = gguf.GGUFReader, gguf.get_tensor_name_map
    a_in, b_trying, a_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def first() -> None:
        with _one_gguf_parse():
            seen["a patched"] = gguf.GGUFReader is not originals[0]
            a_in.set()
            b_trying.wait(5)
            time.sleep(0.3)  # the second thread would be inside by now, were there no lock
            a_out.set()

    def second() -> None:
        a_in.wait(5)
        b_trying.set()
        with _one_gguf_parse():
            seen["b after a"] = a_out.is_set()
            seen["b patched"] = gguf.GGUFReader is not originals[0]

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {"a patched": True, "b after a": True, "b patched": True}
    assert (gguf.GGUFReader, gguf.get_tensor_name_map) == originals


def test_a_nested_block_reuses_the_stand_ins_and_leaves_none() -> None:
    originals = gguf.GGUFReader, gguf.get_tensor_name_map
    with _one_gguf_parse():
        outer = gguf.GGUFReader
        with _one_gguf_parse():
            assert gguf.GGUFReader is outer  # not a stand-in of a stand-in
        assert gguf.GGUFReader is outer
    assert (gguf.GGUFReader, gguf.get_tensor_name_map) == originals
