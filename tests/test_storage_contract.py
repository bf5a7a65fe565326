"""Optuna's own storage test case, run on foldwise's journal storages."""

from __future__ import annotations

import pytest
from optuna.storages import JournalStorage
from optuna.testing.pytest_storages import StorageTestCase

from foldwise.storage import BatchedJournalStorage, FileJournalBackend


class TestBatchedJournalStorage(StorageTestCase):
    @pytest.fixture
    def storage(self, tmp_path):
        return BatchedJournalStorage(FileJournalBackend(tmp_path / "studies.journal"))


class TestJournalStorageOnFoldwiseFile(StorageTestCase):
    @pytest.fixture
    def storage(self, tmp_path):
        return JournalStorage(FileJournalBackend(tmp_path / "studies.journal"))
