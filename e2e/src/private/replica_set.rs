//! A private three-member MongoDB replica set, for failover tests.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::mongo::PrivateMongo;

/// Three mongod of one replica set, each on its own port and data folder, electing a
/// new primary within seconds of losing one (election timeout 2 s).
pub struct PrivateReplicaSet {
    name: String,
    members: Vec<Option<PrivateMongo>>,
    ports: Vec<u16>,
}

impl PrivateReplicaSet {
    pub async fn start(name: &str) -> Result<Self> {
        let set = format!("rs{name}");
        let mut members = Vec::new();
        for i in 0..3 {
            members.push(Some(PrivateMongo::spawn_member(
                &format!("{name}-{i}"),
                &set,
            )?));
        }
        let ports: Vec<u16> = members.iter().flatten().map(|m| m.port).collect();
        let replica_set = PrivateReplicaSet {
            name: set,
            members,
            ports,
        };
        replica_set.initiate().await?;
        Ok(replica_set)
    }

    /// The connection string naming every member.
    pub fn uri(&self) -> String {
        let hosts: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("mongodb://{}/?replicaSet={}", hosts.join(","), self.name)
    }

    async fn direct(port: u16) -> Result<mongodb::Database> {
        let client = mongodb::Client::with_uri_str(format!(
            "mongodb://127.0.0.1:{port}/?directConnection=true&serverSelectionTimeoutMS=2000"
        ))
        .await?;
        Ok(client.database("admin"))
    }

    async fn initiate(&self) -> Result<()> {
        let members: Vec<bson::Document> = self
            .ports
            .iter()
            .enumerate()
            .map(|(i, port)| bson::doc! { "_id": i as i32, "host": format!("127.0.0.1:{port}") })
            .collect();
        Self::direct(self.ports[0])
            .await?
            .run_command(bson::doc! {
                "replSetInitiate": {
                    "_id": &self.name,
                    "members": members,
                    "settings": { "electionTimeoutMillis": 2000, "heartbeatIntervalMillis": 500 },
                }
            })
            .await
            .context("initiating the replica set")?;
        self.primary(Duration::from_secs(60)).await?;
        Ok(())
    }

    /// The member that is primary now (waiting up to `within` for an election).
    pub async fn primary(&self, within: Duration) -> Result<usize> {
        let deadline = Instant::now() + within;
        loop {
            for (i, member) in self.members.iter().enumerate() {
                if member.is_none() {
                    continue;
                }
                let Ok(admin) = Self::direct(self.ports[i]).await else {
                    continue;
                };
                if let Ok(hello) = admin.run_command(bson::doc! { "hello": 1 }).await {
                    if hello.get_bool("isWritablePrimary").unwrap_or(false) {
                        return Ok(i);
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("replica set {} has no primary after {within:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Kills the primary with SIGKILL; returns which member it was.
    pub async fn kill_primary(&mut self) -> Result<usize> {
        let primary = self.primary(Duration::from_secs(60)).await?;
        self.members[primary] = None;
        Ok(primary)
    }

    /// Asks the primary to step down (it stays a member); returns which it was.
    pub async fn step_down(&self) -> Result<usize> {
        let primary = self.primary(Duration::from_secs(60)).await?;
        // The primary closes its connections as it steps down: the reply may be lost.
        let _ = Self::direct(self.ports[primary])
            .await?
            .run_command(bson::doc! { "replSetStepDown": 30, "force": true })
            .await;
        Ok(primary)
    }
}
