//! `kavka server` and `kavka dev`, by concern: `config` (file < KAVKA_* < flags),
//! `data_dir` (lock, identity), `open_files`, `serve` (listeners and roles), `dev` (the
//! playground) and `shutdown`.

mod config;
mod data_dir;
mod dev;
mod grpc_metrics;
mod open_files;
mod serve;
mod shutdown;

pub use config::{LogFormat, ProcessSettings, ServerArgs};
pub use dev::{DevArgs, dev};

/// `kavka server`.
pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    serve::serve(args.resolve()?, false).await
}
