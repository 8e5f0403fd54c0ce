//! Private server instances for tests that stop or restart a server: each on its own
//! port with its own data folder, stopped and removed on drop. The machine's shared
//! services are never touched.
//!
//! - [`PrivateNats`]: nats-server with JetStream, optionally TLS, users, nkeys, operator mode.
//! - [`PrivateNatsCluster`]: three of them in one JetStream cluster.
//! - [`PrivatePostgres`]: a PostgreSQL cluster, optionally with passwords, TLS, client certificates.
//! - [`PrivateMongo`]: mongod with auth and TLS or X.509, or a one-node replica set.
//! - [`PrivateReplicaSet`]: three mongod of one replica set, for failover.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

mod mongo;
mod nats;
mod postgres;
mod replica_set;

pub use mongo::PrivateMongo;
pub use nats::{PrivateNats, PrivateNatsCluster};
pub use postgres::PrivatePostgres;
pub use replica_set::PrivateReplicaSet;

/// A free port on loopback (free when asked; the server binds it right after).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(crate) fn wait_for_port(port: u16, limit: Duration) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listens on port {port} after {limit:?}")
}

pub(crate) fn scratch_dir(name: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("mongo2pg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
