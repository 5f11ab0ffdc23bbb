//! What a newcomer meets in the first hour (issue 19): the README's commands run as written on a
//! fresh clone, the Rust version it states is the one Cargo requires, a taken port and a missing
//! production secret say what to do, and only `serve` warns about a development JWT secret.
//!
//! The binary runs in a directory of its own with nothing but the variables each test sets (no
//! `.env`), on an SQLite file there.

use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use clap::Parser as _;
use orderly_domain::Uuid;
use orderly_server::cli::Cli;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

/// A working directory of its own, removed at the end.
struct Workdir(PathBuf);

impl Workdir {
    fn new() -> Self {
        let path =
            std::env::temp_dir().join(format!("orderly-first-hour-{}", Uuid::now_v7().simple()));
        fs::create_dir_all(&path).expect("a working directory");
        Self(path)
    }

    fn sqlite_url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.0.join("orderly.db").display())
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// What a run of the binary ended with.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Both streams: log lines go to stdout, `main`'s error to stderr.
    fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs `orderly args...` in `dir` with only `env`, `stdin` on its standard input, killed after
/// a minute (a `serve` that unexpectedly starts would otherwise never end).
fn orderly(dir: &Workdir, env: &[(&str, &str)], args: &[&str], stdin: &str) -> Run {
    let (out, err, input) = (dir.0.join("stdout"), dir.0.join("stderr"), dir.0.join("stdin"));
    fs::write(&input, stdin).expect("stdin written");
    let file = |path: &Path| fs::File::create(path).expect("an output file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_orderly"))
        .args(args)
        .current_dir(&dir.0)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(fs::File::open(&input).expect("stdin"))
        .stdout(Stdio::from(file(&out)))
        .stderr(Stdio::from(file(&err)))
        .spawn()
        .expect("the binary starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the binary") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("orderly {args:?} still runs after 60 s:\n{}", read_file(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Run { success: status.success(), stdout: read_file(&out), stderr: read_file(&err) }
}

fn read_file(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

// --- the README's commands ----------------------------------------------------------------

/// The command lines a reader may copy: every line of the fenced blocks, and every inline code
/// span outside them, each split at `#` (a comment, `# or: ...`, holds another command).
fn shown_commands(markdown: &str) -> Vec<String> {
    let mut texts = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if fenced {
            texts.push(line.to_owned());
        } else {
            texts.extend(line.split('`').skip(1).step_by(2).map(str::to_owned));
        }
    }
    texts
        .iter()
        .flat_map(|text| text.split('#'))
        .flat_map(|part| split_commands(part.trim().trim_start_matches("or:")))
        .collect()
}

/// The simple commands of a shell line: split at `&&`, `||`, `|` and `;`.
fn split_commands(line: &str) -> Vec<String> {
    line.split("&&")
        .flat_map(|part| part.split(['|', ';']))
        .map(|command| command.trim().to_owned())
        .filter(|command| !command.is_empty())
        .collect()
}

/// The words of a command after its leading `NAME=value` assignments.
fn program_and_args(command: &str) -> Vec<&str> {
    command
        .split_whitespace()
        .skip_while(|word| {
            word.split_once('=').is_some_and(|(name, _)| {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            })
        })
        .collect()
}

/// The targets the Makefile defines.
fn make_targets(makefile: &str) -> Vec<&str> {
    makefile
        .lines()
        .filter_map(|line| line.split_once(':').map(|(name, _)| name))
        .filter(|name| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        })
        .collect()
}

/// Why `command` cannot run as written on a fresh clone, if it cannot.
fn not_runnable(command: &str, targets: &[&str]) -> Option<String> {
    let words = program_and_args(command);
    match words.as_slice() {
        // `orderly` alone names the binary; `orderly <command>` needs it installed.
        ["orderly", _, ..] => Some(format!(
            "`{command}`: no `orderly` on a fresh clone's PATH; write `cargo run -p orderly-server \
             --bin orderly -- ...` or a make target"
        )),
        ["make", target, ..] if !target.starts_with('-') && !targets.contains(target) => {
            Some(format!("`{command}`: the Makefile has no target `{target}`"))
        }
        ["cargo", "run", ..] => {
            let (_, args) = command.split_once("--bin orderly --")?;
            let args = args.split(['>', '<']).next().unwrap_or_default();
            let argv = std::iter::once("orderly").chain(args.split_whitespace());
            Cli::try_parse_from(argv).err().map(|error| format!("`{command}`: {error}"))
        }
        _ => None,
    }
}

#[test]
fn every_command_the_readme_shows_runs_on_a_fresh_clone() {
    let makefile = read("Makefile");
    let targets = make_targets(&makefile);
    let commands = shown_commands(&read("README.md"));
    let runs_orderly = |command: &&String| command.contains("--bin orderly --");
    assert!(commands.iter().filter(runs_orderly).count() >= 4, "found: {commands:#?}");
    assert!(makefile.contains("$(ORDERLY) db create"), "the recipes run the binary as $(ORDERLY)");
    let mut problems: Vec<String> =
        commands.iter().filter_map(|command| not_runnable(command, &targets)).collect();
    // The Makefile's own recipes (their `orderly` arguments parsed too) and `make help` texts.
    for line in makefile.lines() {
        let help = line.split_once("## ").map_or("", |(_, help)| help);
        let spans = help.split('`').skip(1).step_by(2).map(str::to_owned);
        let recipe = line.strip_prefix('\t').map(|recipe| {
            let recipe =
                recipe.replace("$(ORDERLY)", "cargo run -p orderly-server --bin orderly --");
            split_commands(&recipe.replace("$(CARGO)", "cargo"))
        });
        for command in spans.chain(recipe.into_iter().flatten()) {
            problems.extend(not_runnable(&command, &targets).map(|p| format!("Makefile: {p}")));
        }
    }
    assert!(problems.is_empty(), "not runnable as written:\n{}", problems.join("\n"));
}

#[test]
fn the_readme_check_itself_catches_what_a_newcomer_cannot_run() {
    let targets = ["demo", "db-create"];
    assert!(not_runnable("orderly db create", &targets).is_some());
    assert!(not_runnable("DATABASE_URL=x orderly config check", &targets).is_some());
    assert!(not_runnable("make db-crate", &targets).is_some());
    let typo = "cargo run -p orderly-server --bin orderly -- db crate";
    assert!(not_runnable(typo, &targets).is_some());
    let redirected = "cargo run -q -p orderly-server --bin orderly -- openapi > docs/x.json";
    assert!(not_runnable(redirected, &targets).is_none());
    assert!(
        not_runnable("cargo run -p orderly-server --bin orderly -- db create", &targets).is_none()
    );
    assert!(not_runnable("orderly", &targets).is_none(), "the binary's name alone");
    assert_eq!(
        shown_commands("```sh\nmake demo   # or: a && b | c\n```\nsee `make db-create`"),
        vec!["make demo", "a", "b", "c", "make db-create"]
    );
}

#[test]
fn the_readme_states_the_rust_version_cargo_requires() {
    let manifest = read("Cargo.toml");
    let version = manifest
        .lines()
        .find_map(|line| line.strip_prefix("rust-version = "))
        .expect("Cargo.toml's [workspace.package] states a rust-version")
        .trim_matches('"');
    let readme = read("README.md");
    let stated = format!("Needs Rust {version} or newer");
    assert!(readme.contains(&stated), "README.md should say `{stated}`");
}

// --- a taken port -------------------------------------------------------------------------

#[test]
fn serving_on_a_taken_port_names_the_address_and_says_to_set_port() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = taken.local_addr().expect("an address").port().to_string();
    let dir = Workdir::new();
    let url = dir.sqlite_url();
    let env = [("DATABASE_URL", url.as_str()), ("HOST", "127.0.0.1"), ("PORT", port.as_str())];

    let run = orderly(&dir, &env, &["serve"], "");

    assert!(!run.success, "served on a taken port:\n{}", run.output());
    let error = run.stderr;
    assert!(error.contains(&format!("error: cannot listen on 127.0.0.1:{port}")), "{error}");
    assert!(error.contains("in use"), "the cause: {error}");
    assert!(error.contains("hint: another process"), "{error}");
    assert!(error.contains("set PORT to another port"), "{error}");
}

// --- the production secret ----------------------------------------------------------------

#[test]
fn a_missing_or_short_production_jwt_secret_says_how_to_make_one() {
    let how = "openssl rand -hex 32";
    assert!(read(".env.example").contains(how), ".env.example gives the same advice");
    let dir = Workdir::new();
    let url = dir.sqlite_url();
    let production = [("APP_ENV", "production"), ("DATABASE_URL", url.as_str())];
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[], "JWT_SECRET: required in production"),
        (&[("JWT_SECRET", "too-short")], "JWT_SECRET: must be at least 32 bytes"),
        // A value that does not parse stops the full check; the secret is still reported.
        (&[("PORT", "not-a-port")], "JWT_SECRET: required in production"),
    ];
    for (extra, problem) in cases {
        let env: Vec<_> = production.iter().chain(extra).copied().collect();
        for command in [&["config", "check"][..], &["serve"]] {
            let run = orderly(&dir, &env, command, "");
            assert!(!run.success, "{command:?} {extra:?} passed:\n{}", run.output());
            let line =
                run.stderr.lines().find(|line| line.contains(problem)).unwrap_or_else(|| {
                    panic!("{command:?} {extra:?}: no `{problem}`:\n{}", run.stderr)
                });
            assert!(line.contains(how), "{command:?} {extra:?}: `{line}` should say `{how}`");
        }
    }
}

// --- the development-secret warning -------------------------------------------------------

#[test]
fn only_serving_warns_about_a_generated_jwt_secret() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = taken.local_addr().expect("an address").port().to_string();
    let dir = Workdir::new();
    let url = dir.sqlite_url();
    // Development, as a newcomer runs it: no JWT_SECRET.
    let env = [("DATABASE_URL", url.as_str()), ("HOST", "127.0.0.1"), ("PORT", port.as_str())];

    let seed = orderly(&dir, &env, &["seed"], "");
    assert!(seed.success, "seed failed:\n{}", seed.output());
    assert!(!seed.output().contains("JWT_SECRET"), "seed issues no token:\n{}", seed.output());

    let args = ["admin", "create", "--email", "second@example.com", "--password-stdin"];
    let admin = orderly(&dir, &env, &args, "a long admin password\n");
    assert!(admin.success, "admin create failed:\n{}", admin.output());
    assert!(
        !admin.output().contains("JWT_SECRET"),
        "admin create issues no token:\n{}",
        admin.output()
    );

    // `serve` wires the same adapters, then stops at the taken port: its warning came before.
    let serve = orderly(&dir, &env, &["serve"], "");
    assert!(serve.stderr.contains("cannot listen on"), "{}", serve.output());
    assert!(
        serve.output().contains("JWT_SECRET is not set: using a random secret"),
        "serve issues tokens and says their secret is a throw-away one:\n{}",
        serve.output()
    );
}
