//! `bramble user add|delete|list`: SCRAM users, through the Kafka protocol's
//! AlterUserScramCredentials and DescribeUserScramCredentials (what `kafka-configs.sh
//! --entity-type users` uses). The password is salted and hashed here; only the salted
//! password crosses the wire, and the broker keeps only what SCRAM needs to check it.
//!
//! The first user is added through a listener that needs no login (a PLAINTEXT listener
//! on 127.0.0.1, as the default config has); later ones can also go through a SASL
//! listener with `--login-user` (password in `BRAMBLE_LOGIN_PASSWORD`).

use std::io::BufRead;

use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::client::Client;
use crate::security::scram::{self, Mechanism};

/// Where the broker is and who to log in as.
#[derive(Debug, clap::Args)]
pub struct Connection {
    /// A broker's host:port.
    #[arg(long = "bootstrap-server", default_value = "127.0.0.1:9092")]
    bootstrap_server: String,
    /// Log in as this user (SCRAM-SHA-256; password in BRAMBLE_LOGIN_PASSWORD) first: for
    /// a SASL listener.
    #[arg(long = "login-user")]
    login_user: Option<String>,
}

/// User subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Add a user, or change their password.
    Add {
        /// User name.
        name: String,
        /// The password (visible in the process list; prefer --password-stdin).
        #[arg(long, conflicts_with = "password_stdin")]
        password: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long = "password-stdin")]
        password_stdin: bool,
        /// SCRAM-SHA-256 or SCRAM-SHA-512 (repeatable; default both). PLAIN logins are
        /// checked against the SCRAM-SHA-256 credential.
        #[arg(long = "mechanism")]
        mechanisms: Vec<String>,
        /// PBKDF2 iterations (4096 to 16384).
        #[arg(long, default_value_t = scram::ITERATIONS_MIN)]
        iterations: u32,
        #[command(flatten)]
        connection: Connection,
    },
    /// Delete a user (every mechanism, or only those given).
    Delete {
        /// User name.
        name: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512 (repeatable; default both).
        #[arg(long = "mechanism")]
        mechanisms: Vec<String>,
        #[command(flatten)]
        connection: Connection,
    },
    /// List users and their mechanisms.
    List {
        #[command(flatten)]
        connection: Connection,
    },
}

fn mechanisms(names: &[String]) -> anyhow::Result<Vec<Mechanism>> {
    if names.is_empty() {
        return Ok(Mechanism::ALL.to_vec());
    }
    names
        .iter()
        .map(|n| {
            Mechanism::from_name(n)
                .ok_or_else(|| anyhow::anyhow!("`{n}`: use SCRAM-SHA-256 or SCRAM-SHA-512"))
        })
        .collect()
}

async fn connect(connection: &Connection) -> anyhow::Result<Client> {
    let mut client = Client::connect(&connection.bootstrap_server).await?;
    if let Some(user) = &connection.login_user {
        let password = std::env::var("BRAMBLE_LOGIN_PASSWORD").map_err(|_| {
            anyhow::anyhow!("--login-user needs the password in BRAMBLE_LOGIN_PASSWORD")
        })?;
        client
            .login_scram(Mechanism::Sha256, user, &password)
            .await?;
    }
    Ok(client)
}

fn read_password(password: Option<String>, stdin: bool) -> anyhow::Result<String> {
    let password = match (password, stdin) {
        (Some(p), _) => p,
        (None, true) => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
        (None, false) => anyhow::bail!("give the password with --password-stdin or --password"),
    };
    anyhow::ensure!(!password.is_empty(), "the password is empty");
    Ok(password)
}

/// Run a user subcommand.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Add {
            name,
            password,
            password_stdin,
            mechanisms: names,
            iterations,
            connection,
        } => {
            crate::security::users::validate_name(&name).map_err(anyhow::Error::msg)?;
            anyhow::ensure!(
                (scram::ITERATIONS_MIN..=scram::ITERATIONS_MAX).contains(&iterations),
                "--iterations must be between {} and {}",
                scram::ITERATIONS_MIN,
                scram::ITERATIONS_MAX
            );
            let password = read_password(password, password_stdin)?;
            let rng = ring::rand::SystemRandom::new();
            let upsertions = mechanisms(&names)?
                .into_iter()
                .map(|m| {
                    let salt = crate::security::random_bytes(&rng, 16);
                    let salted = m.salted_password(password.as_bytes(), &salt, iterations);
                    ScramCredentialUpsertion::default()
                        .with_name(StrBytes::from_string(name.clone()))
                        .with_mechanism(m.code())
                        .with_iterations(iterations as i32)
                        .with_salt(salt.into())
                        .with_salted_password(salted.into())
                })
                .collect();
            let mut client = connect(&connection).await?;
            let response = client
                .send(
                    AlterUserScramCredentialsRequest::default().with_upsertions(upsertions),
                    0,
                )
                .await?;
            report(&response.results)?;
            println!("user {name} saved");
        }
        Command::Delete {
            name,
            mechanisms: names,
            connection,
        } => {
            let explicit = !names.is_empty();
            let mut client = connect(&connection).await?;
            let mut wanted = mechanisms(&names)?;
            if !explicit {
                // Only the mechanisms the user has, so a missing one is not an error.
                let described = client
                    .send(
                        DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
                            UserName::default().with_name(StrBytes::from_string(name.clone())),
                        ])),
                        0,
                    )
                    .await?;
                let result = described
                    .results
                    .first()
                    .ok_or_else(|| anyhow::anyhow!("the broker answered no result"))?;
                anyhow::ensure!(result.error_code == 0, "no user {name}");
                wanted = result
                    .credential_infos
                    .iter()
                    .filter_map(|c| Mechanism::from_code(c.mechanism))
                    .collect();
            }
            let deletions = wanted
                .into_iter()
                .map(|m| {
                    ScramCredentialDeletion::default()
                        .with_name(StrBytes::from_string(name.clone()))
                        .with_mechanism(m.code())
                })
                .collect();
            let response = client
                .send(
                    AlterUserScramCredentialsRequest::default().with_deletions(deletions),
                    0,
                )
                .await?;
            report(&response.results)?;
            println!("user {name} deleted");
        }
        Command::List { connection } => {
            let mut client = connect(&connection).await?;
            let response = client
                .send(DescribeUserScramCredentialsRequest::default(), 0)
                .await?;
            anyhow::ensure!(
                response.error_code == 0,
                "listing users failed (error {})",
                response.error_code
            );
            for result in &response.results {
                let mechanisms: Vec<String> = result
                    .credential_infos
                    .iter()
                    .map(|c| {
                        let name = Mechanism::from_code(c.mechanism).map_or("?", |m| m.name());
                        format!("{name}(iterations={})", c.iterations)
                    })
                    .collect();
                println!("{}\t{}", result.user.as_str(), mechanisms.join(" "));
            }
        }
    }
    Ok(())
}

fn report(
    results: &[kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult],
) -> anyhow::Result<()> {
    for result in results {
        anyhow::ensure!(
            result.error_code == 0,
            "user {}: error {} ({})",
            result.user.as_str(),
            result.error_code,
            result.error_message.as_deref().unwrap_or("")
        );
    }
    Ok(())
}
