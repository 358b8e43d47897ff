//! The sled log store and state machine pass openraft's storage test suite.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use kavka_controller::TypeConfig;
use kavka_controller::raft::log_store::SledLogStore;
use kavka_controller::raft::state_machine::MetadataStateMachine;
use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};

struct SledBuilder;

impl StoreBuilder<TypeConfig, SledLogStore, MetadataStateMachine, tempfile::TempDir>
    for SledBuilder
{
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, SledLogStore, MetadataStateMachine), StorageError<TypeConfig>>
    {
        let dir = tempfile::tempdir().expect("temp dir");
        let (log, sm) = kavka_controller::raft::open(dir.path()).expect("open store");
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_store_passes_openrafts_suite() {
    Suite::test_all(SledBuilder).await.unwrap();
}
