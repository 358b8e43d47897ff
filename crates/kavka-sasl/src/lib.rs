//! SASL mechanisms for the Kafka listener, server side: PLAIN (`plain`) and
//! SCRAM-SHA-256/512 (`scram`), as Kafka's SaslAuthenticate carries them.
//!
//! Invariants: pure (no I/O, no clock): the listener moves the bytes and looks up users;
//! passwords and keys are never printed (`Debug` hides them). Must not depend on the
//! broker or any listener.

pub mod plain;
pub mod scram;
