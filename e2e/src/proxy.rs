//! A TCP proxy on loopback that can drop traffic for a while: connections stay open
//! but no byte crosses, as when a network path between two hosts fails (no reset, no
//! close, only silence), then everything flows again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Forwards `127.0.0.1:<port>` to an upstream address until dropped.
pub struct Proxy {
    pub port: u16,
    dropping: Arc<AtomicBool>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: &str) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let dropping = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_string();
        let accept = tokio::spawn({
            let dropping = dropping.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        continue;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::spawn(pipe(client_read, server_write, dropping.clone()));
                    tokio::spawn(pipe(server_read, client_write, dropping.clone()));
                }
            }
        });
        Ok(Proxy {
            port,
            dropping,
            accept,
        })
    }

    /// Stops every byte in both directions (connections stay open) until
    /// [`Proxy::restore`].
    pub fn drop_traffic(&self) {
        self.dropping.store(true, Ordering::SeqCst);
    }

    pub fn restore(&self) {
        self.dropping.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies one direction, holding bytes back while `dropping` (they are delivered late,
/// as TCP retransmits them once the path works again).
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    dropping: Arc<AtomicBool>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        while dropping.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        while dropping.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
