"""The tray's garbage collection runs on the GUI thread, never on the engine's or the API's."""

from __future__ import annotations

import gc
import threading
import weakref

from PySide6.QtCore import QObject

from agent.ui.collector import GuiGarbageCollector


def test_collection_is_off_elsewhere_and_done_by_the_gui_thread(qapp):
    collector = GuiGarbageCollector(interval_ms=60_000)
    freed_on: list[str] = []
    try:
        assert not gc.isenabled()

        def churn() -> None:
            widget = QObject()
            widget.me = widget  # a cycle: only the cyclic collector frees it
            refs.append(
                weakref.ref(widget, lambda _: freed_on.append(threading.current_thread().name))
            )
            del widget
            junk = [[i] for i in range(50_000)]  # far past every threshold
            assert gc.get_count()[0] > gc.get_threshold()[0]
            del junk

        refs: list[weakref.ref] = []
        worker = threading.Thread(target=churn, name="engine-like")
        worker.start()
        worker.join()
        assert freed_on == []  # the worker crossed thresholds and collected nothing
        gc.collect()  # what collect_due does when due, here unconditionally
        assert freed_on == [threading.current_thread().name]
    finally:
        collector.stop()
    assert gc.isenabled()


def test_collect_due_follows_the_thresholds(qapp):
    collector = GuiGarbageCollector(interval_ms=60_000)
    try:
        gc.collect()
        assert collector.collect_due() == 0  # nothing due right after a full collection
        junk = [[i] for i in range(gc.get_threshold()[0] * 2)]
        assert gc.get_count()[0] > gc.get_threshold()[0]
        collector.collect_due()
        assert gc.get_count()[0] <= gc.get_threshold()[0]
        assert junk  # alive throughout: the count measured allocations, not garbage
    finally:
        collector.stop()


def test_a_request_from_another_thread_collects_on_the_gui_thread_only_when_due(qapp, qtbot):
    collector = GuiGarbageCollector()  # no timer: only requests
    try:
        gc.collect()
        freed_on: list[str] = []

        def make_garbage() -> None:
            widget = QObject()
            widget.me = widget
            refs.append(
                weakref.ref(widget, lambda _: freed_on.append(threading.current_thread().name))
            )

        refs: list[weakref.ref] = []
        make_garbage()
        worker = threading.Thread(target=collector.request, name="engine-like")
        worker.start()
        worker.join()
        qtbot.wait(50)
        assert freed_on == []  # below every threshold: the GUI thread was not even asked

        junk = [[i] for i in range(gc.get_threshold()[0] * 2)]
        worker = threading.Thread(target=collector.request, name="engine-like")
        worker.start()
        worker.join()
        qtbot.waitUntil(lambda: freed_on == [threading.current_thread().name], timeout=5000)
        assert junk
    finally:
        collector.stop()
    assert gc.isenabled()
