//! The `orderly` command line.

use std::io::BufRead as _;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use orderly_application::users::register_user::{RegisterUserError, RegisterUserInput};
use orderly_domain::{Email, Password, Role, UserName};

use crate::{
    settings::Settings,
    startup::{Application, connect, wire},
    telemetry,
};

/// Orderly: an order-management HTTP backend.
#[derive(Debug, Parser)]
#[command(name = "orderly", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (applies pending migrations first when AUTO_MIGRATE is on, the default
    /// outside production).
    Serve,
    /// Manage the database schema.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Print the OpenAPI document (JSON) to stdout.
    Openapi,
    /// Administer users.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Debug, Subcommand)]
enum MigrateAction {
    /// Apply pending migrations (all, or the next N).
    Up {
        #[arg(short = 'n', long = "steps")]
        steps: Option<u32>,
    },
    /// Revert the last N migrations (default 1).
    Down {
        #[arg(short = 'n', long = "steps", default_value_t = 1)]
        steps: u32,
    },
    /// List migrations and whether each is applied.
    Status,
    /// Revert every migration, then apply them all: an empty, current schema. Destroys all data.
    Fresh,
}

#[derive(Debug, Subcommand)]
enum AdminAction {
    /// Create an administrator (the first one, or more). The password is read from stdin.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "Administrator")]
        name: String,
        /// Read the password from the first line of stdin (required: passwords never go on the
        /// command line, where `ps` and shell history would see them).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Check the configuration and print the effective settings, secrets redacted.
    Check,
}

fn settings() -> anyhow::Result<Settings> {
    Settings::load().map_err(|error| anyhow::anyhow!("{error}"))
}

/// Runs the command line.
///
/// # Errors
/// Whatever the command fails with; `main` prints it and exits non-zero.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Openapi => {
            println!("{}", orderly_api::openapi::openapi_json());
            Ok(())
        }
        Command::Config { action: ConfigAction::Check } => {
            let settings = settings()?;
            for (key, value) in settings.describe() {
                println!("{key}={value}");
            }
            println!("# configuration is valid");
            Ok(())
        }
        Command::Serve => {
            let settings = settings()?;
            telemetry::init(settings.log.log_format);
            tracing::info!(env = settings.app_env.as_str(), "starting orderly");
            Application::build(&settings).await?.run_until_stopped().await
        }
        Command::Migrate { action } => {
            let settings = settings()?;
            telemetry::init(settings.log.log_format);
            let database = connect(&settings).await?;
            match action {
                MigrateAction::Up { steps } => database.migrate_up(steps).await?,
                MigrateAction::Down { steps } => database.migrate_down(Some(steps)).await?,
                MigrateAction::Fresh => database.migrate_fresh().await?,
                MigrateAction::Status => {}
            }
            for (name, applied) in database.migration_status().await? {
                println!("{} {name}", if applied { "applied" } else { "pending" });
            }
            Ok(())
        }
        Command::Admin { action: AdminAction::Create { email, name, password_stdin: _ } } => {
            let settings = settings()?;
            telemetry::init(settings.log.log_format);
            let mut password = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut password)
                .context("reading the password from stdin")?;
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            let input = RegisterUserInput {
                email: Email::parse(&email).context("--email")?,
                name: UserName::parse(&name).context("--name")?,
                password: Password::parse(password).context("password")?,
                role: Role::Admin,
            };
            let database = connect(&settings).await?;
            if settings.database.auto_migrate {
                database.migrate_up(None).await?;
            }
            let wiring = wire(&database, &settings)?;
            match wiring.use_cases.register_user.execute(input).await {
                Ok(user) => {
                    println!("created admin {} ({})", user.email(), user.id());
                    Ok(())
                }
                Err(RegisterUserError::DuplicateEmail) => {
                    anyhow::bail!("a user with e-mail {email} already exists")
                }
                Err(error) => Err(error.into()),
            }
        }
    }
}
