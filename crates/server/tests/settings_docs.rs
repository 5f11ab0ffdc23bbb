//! Keeps the two hand-written lists of settings honest: `.env.example` and the configuration
//! table of `docs/operations.md` name every environment variable the settings read, and no
//! other. The list of variables is derived from the settings themselves (each leaf of
//! `Settings` is one variable, ADR 0014), as `orderly config check` lists them.
//!
//! Plain file reads; the repository root is two levels above this crate's manifest.

use std::{collections::BTreeSet, fs, path::Path};

use orderly_server::settings::{AppEnv, Settings};

/// Variables the files document that are not settings: read by a library itself.
const NOT_SETTINGS: &[&str] = &[
    // The log filter, read by `tracing-subscriber`.
    "RUST_LOG",
];

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative);
    fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

/// Every variable the settings read, from the settings' own structure.
fn settings_variables() -> BTreeSet<String> {
    Settings::defaults(AppEnv::Development)
        .describe()
        .into_iter()
        .map(|(variable, _)| variable)
        .collect()
}

/// Whether `text` is written like an environment variable name: `A_B2`.
fn is_variable_name(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_uppercase())
        && text.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The variables `.env.example` assigns, set (`PORT=3000`) or commented out (`# JWT_SECRET=`).
fn env_example_variables(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(|line| line.trim_start().trim_start_matches('#').trim_start())
        .filter_map(|line| line.split_once('='))
        .map(|(name, _)| name.trim_end())
        .filter(|name| is_variable_name(name))
        .map(str::to_owned)
        .collect()
}

/// The cells of a markdown table row (`| a | b |`), trimmed; `None` for any other line.
fn cells(line: &str) -> Option<Vec<&str>> {
    let inner = line.trim().strip_prefix('|')?.strip_suffix('|')?;
    Some(inner.split('|').map(str::trim).collect())
}

/// The variables named (as code spans) in the first column of every table of `text` whose
/// first header is `Variable`: `` `HOST` / `PORT` `` names two.
fn table_variables(text: &str) -> BTreeSet<String> {
    let mut variables = BTreeSet::new();
    let mut in_table = false;
    for line in text.lines() {
        let Some(row) = cells(line) else {
            in_table = false;
            continue;
        };
        let first = row.first().copied().unwrap_or_default();
        if first == "Variable" {
            in_table = true;
        } else if in_table && !first.starts_with("---") {
            variables.extend(
                first
                    .split('`')
                    .skip(1)
                    .step_by(2)
                    .filter(|span| is_variable_name(span))
                    .map(str::to_owned),
            );
        }
    }
    variables
}

/// The differences between what a file documents and what the settings read, as a message.
fn differences(file: &str, documented: &BTreeSet<String>) -> Vec<String> {
    let variables = settings_variables();
    let missing = variables.iter().filter(|name| !documented.contains(*name));
    let stale = documented
        .iter()
        .filter(|name| !variables.contains(*name) && !NOT_SETTINGS.contains(&name.as_str()));
    missing
        .map(|name| format!("{file}: {name} is a setting and is not documented"))
        .chain(stale.map(|name| format!("{file}: {name} is documented and is not a setting")))
        .collect()
}

#[test]
fn the_settings_have_the_variables_the_docs_expect_at_least() {
    let variables = settings_variables();
    assert!(variables.len() > 40, "{} variables: {variables:?}", variables.len());
    for expected in ["APP_ENV", "DATABASE_URL", "PAYMENT_API_URL", "RATE_LIMIT_ORDERS"] {
        assert!(variables.contains(expected), "{expected} missing: {variables:?}");
    }
}

#[test]
fn the_env_example_names_every_setting_and_nothing_else() {
    let documented = env_example_variables(&read(".env.example"));
    let problems = differences(".env.example", &documented);
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_operations_table_lists_every_setting_and_nothing_else() {
    let documented = table_variables(&read("docs/operations.md"));
    assert!(!documented.is_empty(), "no `| Variable | ... |` table in docs/operations.md");
    let problems = differences("docs/operations.md", &documented);
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_readers_find_what_they_should() {
    let example = "# Comment with PAYMENT_GATEWAY=http (ADR 0022):\nPORT=3000\n# JWT_SECRET=\n  # A_B2 = x\nlower=1\n";
    assert_eq!(
        env_example_variables(example).into_iter().collect::<Vec<_>>(),
        ["A_B2", "JWT_SECRET", "PORT"]
    );
    let table = "| Variable | Default | Notes |\n|---|---|---|\n| `HOST` / `PORT` | `127.0.0.1` | `NOT_ME` |\n\n| Series | Labels |\n|---|---|\n| `OTHER` | |\n";
    assert_eq!(table_variables(table).into_iter().collect::<Vec<_>>(), ["HOST", "PORT"]);
}
