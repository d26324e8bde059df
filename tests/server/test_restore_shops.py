"""A restore opens the gap in every shop's sequence (server/backup.py): a cursor any shop's
PDV held before the restore is told to resync, whichever shop it is of. Both backends, in
process (the CLI round trips are in test_ops.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.backup import RESTORE_GAP, backup, restore
from server.db import bind_models, connect_database
from server.migrations import migrate
from server.service import SyncService
from server.settings import Settings
from tests.server.conftest import push, push_one


@pytest.fixture
def open_service(tmp_path):
    dbs = []

    def open_(settings: Settings) -> SyncService:
        db, _ = connect_database(settings.database_url, settings.data_dir)
        dbs.append(db)
        migrate(db)
        return SyncService(bind_models(db))

    yield open_
    for db in dbs:
        db.close_all()


def test_a_restore_opens_the_gap_in_every_shops_sequence(database_url, tmp_path, open_service):
    settings = Settings(database_url=database_url, data_dir=Path(tmp_path) / "data")
    svc = open_service(settings)
    push(svc, "products", {"id": "a1"}, {"id": "a2"})  # default shop: head 2
    push_one(svc.scoped("b"), "products", {"id": "b1"})  # shop b: head 1
    svc.db.close_all()
    file = backup(
        settings, Path(tmp_path) / ("copy.db" if "sqlite" in database_url else "copy.sql")
    )

    svc = open_service(settings)
    push(svc, "products", {"id": "a3"}, {"id": "a4"})  # default: 4 (lost by the restore)
    push(svc.scoped("b"), "products", {"id": "b2"}, {"id": "b3"}, {"id": "b4"})  # b: 4
    push_one(svc.scoped("c"), "products", {"id": "c1"})  # shop c exists only after the backup
    svc.db.close_all()
    restore(settings, file, force=True)

    svc = open_service(settings)
    for shop, kept, held in (("default", 2, 4), ("b", 1, 4), ("c", 0, 1)):
        s = svc.scoped(shop)
        assert s.head() == kept + RESTORE_GAP, shop  # every shop's sequence jumped
        for cursor in range(kept + 1, held + 1):  # cursors from before the restore: resync
            with pytest.raises(Exception, match="predates a restore"):
                s.check_cursor(cursor)
        assert len(s.list_live("products")) == kept
    assert svc.scoped("b").list_live("products")[0]["id"] == "b1"
