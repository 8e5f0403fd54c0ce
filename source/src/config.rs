//! Where MongoDB is: the arguments every command that reads it flattens in.

use clap::Args;

/// Where MongoDB is.
#[derive(Debug, Clone, Args)]
pub struct MongoArgs {
    /// MongoDB connection string (credentials are never logged).
    #[arg(
        long,
        env = "MONGODB_URI",
        default_value = "mongodb://127.0.0.1:27017",
        hide_env_values = true
    )]
    pub mongodb_uri: String,

    /// Database to read; several, separated by commas, or `*` for every database but
    /// admin, config and local: their collections are then named `database.collection`.
    #[arg(long, env = "MONGODB_DATABASE", default_value = "app")]
    pub mongodb_database: String,
}
