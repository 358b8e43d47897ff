//! The controller listener's frames on arbitrary bytes: a Raft call's body (protobuf
//! envelope, then openraft's JSON) and its headers (secret, cluster id) are refused or
//! judged, never a panic. Run: `cargo fuzz run raft_frames` in crates/kavka-controller.
#![no_main]

use kavka_controller::raft::network::{RaftCall, claimed_sender};
use kavka_controller::raft::peers::{ControllerSecret, PeerPolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let secret = ControllerSecret::parse("a-shared-secret").ok();
    let policy = PeerPolicy::new([1, 2, 3], secret);
    for call in [RaftCall::AppendEntries, RaftCall::Vote, RaftCall::FullSnapshot] {
        if let Ok(sender) = claimed_sender(call, data) {
            let _ = policy.check_sender(sender, false);
        }
    }
    if let Ok(header) = std::str::from_utf8(data) {
        let _ = policy.check_secret(Some(header));
        let _ = PeerPolicy::check_cluster(Some("cluster"), Some(header));
        let _ = ControllerSecret::parse(header);
    }
});
