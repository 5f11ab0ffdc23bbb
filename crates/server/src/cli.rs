//! The `orderly` command line.

use std::io::BufRead as _;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use orderly_api::routes::table::Version;
use orderly_application::users::register_user::{RegisterUserError, RegisterUserInput};
use orderly_domain::{Email, Password, Role, UserName};

use orderly_infrastructure::{
    Database,
    persistence::{Created, create_database},
};

use crate::{
    seed::{AdminOutcome, DemoAdmin, seed},
    settings::{AppEnv, Settings},
    startup::{Application, base_url, connect, wire},
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
    /// Print the OpenAPI document (JSON) of one version of the API to stdout.
    Openapi {
        /// The version: v1 or v2.
        #[arg(default_value = "v1", value_parser = api_version)]
        version: Version,
    },
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
    /// Manage the database itself.
    Db {
        #[command(subcommand)]
        action: DbAction,
    },
    /// Load demo data: a demo administrator and about twenty products. Idempotent: what exists
    /// is left unchanged. Refused when APP_ENV=production unless --force is given.
    Seed {
        /// The demo administrator's e-mail address.
        #[arg(long, default_value = "admin@example.com")]
        admin_email: String,
        /// The demo administrator's name.
        #[arg(long, default_value = "Demo Admin")]
        admin_name: String,
        /// Read the demo administrator's password from the first line of stdin. Without it, a
        /// random password is generated and printed once.
        #[arg(long)]
        admin_password_stdin: bool,
        /// Seed even when APP_ENV=production.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
enum DbAction {
    /// Create the database DATABASE_URL names (PostgreSQL) or its file (SQLite) if it does not
    /// exist. Then `orderly migrate up` (or `orderly serve` with AUTO_MIGRATE) makes the schema.
    Create,
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

/// The first line of stdin, without its line ending.
fn password_from_stdin() -> anyhow::Result<String> {
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password).context("reading the password from stdin")?;
    Ok(password.trim_end_matches(['\r', '\n']).to_owned())
}

/// Opens the database and checks that it can be used, saying why not (the server and database
/// named, the password masked, a hint).
async fn open_database(settings: &Settings) -> anyhow::Result<Database> {
    let database = connect(settings).await?;
    database.check().await?;
    Ok(database)
}

/// Applies pending migrations when `AUTO_MIGRATE` is on; otherwise refuses to go on with a
/// schema that is behind.
async fn ensure_migrated(database: &Database, settings: &Settings) -> anyhow::Result<()> {
    if settings.database.auto_migrate {
        return database.migrate_up(None).await;
    }
    let pending = database.pending_migrations().await?;
    if !pending.is_empty() {
        anyhow::bail!(
            "the database schema is behind this binary ({} migration(s) pending, AUTO_MIGRATE is \
             off): run `orderly migrate up` first",
            pending.len()
        );
    }
    Ok(())
}

/// A version of the API by its name (`v1`).
fn api_version(name: &str) -> Result<Version, String> {
    Version::ALL.into_iter().find(|version| version.name() == name).ok_or_else(|| {
        let names: Vec<&str> = Version::ALL.iter().map(|version| version.name()).collect();
        format!("no API version `{name}` (there are {})", names.join(", "))
    })
}

/// Runs the command line.
///
/// # Errors
/// Whatever the command fails with; `main` prints it and exits non-zero.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Openapi { version } => {
            println!("{}", orderly_api::openapi::openapi_json(version));
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
            let telemetry = telemetry::Telemetry::init(&settings)?;
            tracing::info!(env = settings.app_env.as_str(), "starting orderly");
            let served = match Application::build(&settings).await {
                Ok(application) => application.run_until_stopped().await,
                Err(error) => Err(error),
            };
            telemetry.shutdown();
            served
        }
        Command::Migrate { action } => {
            let settings = settings()?;
            telemetry::init(settings.log.log_format);
            let database = open_database(&settings).await?;
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
            let password = password_from_stdin()?;
            let input = RegisterUserInput {
                email: Email::parse(&email).context("--email")?,
                name: UserName::parse(&name).context("--name")?,
                password: Password::parse(password).context("password")?,
                role: Role::Admin,
            };
            let database = open_database(&settings).await?;
            ensure_migrated(&database, &settings).await?;
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
        Command::Db { action: DbAction::Create } => {
            let settings = settings()?;
            telemetry::init(settings.log.log_format);
            let (location, created) =
                create_database(&settings.database.database_url, settings.acquire_timeout())
                    .await?;
            match created {
                Created::Created => println!("created the {location}"),
                Created::AlreadyExists => println!("the {location} already exists: nothing to do"),
                Created::InMemory => println!("an in-memory SQLite database needs no creating"),
            }
            Ok(())
        }
        Command::Seed { admin_email, admin_name, admin_password_stdin, force } => {
            let settings = settings()?;
            telemetry::init(settings.log.log_format);
            if settings.app_env == AppEnv::Production && !force {
                anyhow::bail!(
                    "refusing to seed demo data with APP_ENV=production: it creates an \
                     administrator ({admin_email}) and demo products. Pass --force to do it anyway"
                );
            }
            let admin = DemoAdmin {
                email: Email::parse(&admin_email).context("--admin-email")?,
                name: UserName::parse(&admin_name).context("--admin-name")?,
                password: if admin_password_stdin {
                    Some(Password::parse(password_from_stdin()?).context("password")?)
                } else {
                    None
                },
            };
            let database = open_database(&settings).await?;
            ensure_migrated(&database, &settings).await?;
            let wiring = wire(&database, &settings)?;
            let report = seed(&wiring, admin).await?;
            match &report.admin {
                AdminOutcome::Created { generated_password: Some(password) } => {
                    // Printed once, here, and nowhere else: only its hash is stored.
                    println!("created the demo administrator {}", report.admin_email);
                    println!("  password: {}", password.expose());
                    println!("  (generated; shown only now, note it down)");
                }
                AdminOutcome::Created { generated_password: None } => {
                    println!("created the demo administrator {}", report.admin_email);
                }
                AdminOutcome::Existed => println!(
                    "the demo administrator {} already exists: unchanged",
                    report.admin_email
                ),
            }
            match (report.products_created, report.products_existing) {
                (0, existing) => println!("the {existing} demo products already exist: unchanged"),
                (created, 0) => println!("created {created} demo products"),
                (created, existing) => println!(
                    "created {created} demo products ({existing} already existed: unchanged)"
                ),
            }
            if report.unchanged() {
                println!("nothing to do: the demo data is already there");
            }
            let swagger =
                format!("{}/swagger-ui/", base_url(&settings.server.host, settings.server.port));
            println!(
                "`orderly serve`, then open {swagger} and Authorize as {} (or register a customer)",
                report.admin_email
            );
            Ok(())
        }
    }
}
