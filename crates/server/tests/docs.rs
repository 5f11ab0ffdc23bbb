//! Keeps the documentation honest: the long guides stay short, every relative link and every
//! repository path the docs name exists, and every decision record is in the ADR index.
//!
//! Plain file reads, no server and no database; the repository root is two levels above this
//! crate's manifest.

use std::{
    fs,
    path::{Path, PathBuf},
};

/// Links known to be broken, as `(file relative to the repository root, link target as
/// written)`. Empty: every link resolves. A link that breaks is fixed rather than listed here;
/// an entry that resolves again fails the test, so the list cannot go stale.
const KNOWN_BROKEN_LINKS: &[(&str, &str)] = &[];

/// The prefixes of a backticked text that names a path in the repository.
const REPO_PATH_PREFIXES: &[&str] =
    &["crates/", "docs/", "migrations/", "deploy/", "bench/", "e2e/"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

/// Words as a reader meets them: whitespace-separated tokens of the whole file, fenced code
/// blocks (diagrams, examples) included, since they are read too.
fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

/// The lines of `text` outside fenced code blocks (```` ``` ```` or `~~~`), with their numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<&str> = None;
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|marker| trimmed.starts_with(marker));
        match (fence, marker) {
            (None, Some(marker)) => fence = Some(marker),
            (Some(open), Some(marker)) if open == marker => fence = None,
            (None, None) => lines.push((index + 1, line)),
            _ => {}
        }
    }
    lines
}

/// The inline code spans of a line (the text between pairs of backticks).
fn code_spans(line: &str) -> impl Iterator<Item = &str> {
    line.split('`').skip(1).step_by(2)
}

/// A line with its inline code spans removed, so that `[a](b)` shown as code is not a link.
fn without_code_spans(line: &str) -> String {
    line.split('`').step_by(2).collect()
}

/// The targets of the inline markdown links `[text](target)` and `[text](target "title")` of a
/// line, as written.
fn link_targets(line: &str) -> Vec<String> {
    let prose = without_code_spans(line);
    let mut targets = Vec::new();
    let mut rest = prose.as_str();
    while let Some(start) = rest.find("](") {
        let after = &rest[start + 2..];
        let target = if let Some(bracketed) = after.strip_prefix('<') {
            bracketed.split('>').next().unwrap_or_default()
        } else {
            after.split(|c: char| c == ')' || c.is_whitespace()).next().unwrap_or_default()
        };
        targets.push(target.to_owned());
        rest = after;
    }
    targets
}

/// True for a link that leaves the repository or stays on the same page.
fn is_external_or_anchor(target: &str) -> bool {
    target.is_empty()
        || target.starts_with('#')
        || ["http://", "https://", "mailto:"].iter().any(|scheme| target.starts_with(scheme))
}

/// A backticked text that names a repository path: a known top-level folder, no spaces, and no
/// glob, brace list or placeholder.
fn is_repo_path(code: &str) -> bool {
    REPO_PATH_PREFIXES.iter().any(|prefix| code.starts_with(prefix))
        && !code.contains(|c: char| c.is_whitespace() || matches!(c, '*' | '{' | '<'))
}

/// The markdown files under `dir` (relative to the root), recursively, as root-relative paths.
fn markdown_under(dir: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![repo_root().join(dir)];
    while let Some(current) = pending.pop() {
        let entries = fs::read_dir(&current)
            .unwrap_or_else(|error| panic!("listing {}: {error}", current.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "md") {
                let relative = path.strip_prefix(repo_root()).expect("under the root");
                found.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    found.sort();
    found
}

/// `crates/<name>/README.md` for every crate that has one.
fn crate_readmes() -> Vec<String> {
    let crates = repo_root().join("crates");
    let mut readmes: Vec<String> = fs::read_dir(&crates)
        .unwrap_or_else(|error| panic!("listing {}: {error}", crates.display()))
        .map(|entry| entry.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .map(|name| format!("crates/{name}/README.md"))
        .filter(|readme| repo_root().join(readme).is_file())
        .collect();
    readmes.sort();
    readmes
}

/// Every markdown file whose links are checked.
fn documents() -> Vec<String> {
    let mut documents = markdown_under("docs");
    documents.push("README.md".to_owned());
    documents.extend(crate_readmes());
    documents
}

#[test]
fn architecture_md_is_at_most_2000_words() {
    let words = word_count(&read("docs/architecture.md"));
    assert!(
        words <= 2000,
        "docs/architecture.md has {words} words (at most 2000): link to the code or the ADRs \
         instead of restating them"
    );
}

#[test]
fn extending_md_is_at_most_1500_words() {
    let words = word_count(&read("docs/extending.md"));
    assert!(words <= 1500, "docs/extending.md has {words} words (at most 1500)");
}

#[test]
fn every_relative_link_in_the_docs_points_at_a_file_that_exists() {
    let root = repo_root();
    let mut broken = Vec::new();
    let mut still_listed: Vec<(&str, &str)> = KNOWN_BROKEN_LINKS.to_vec();
    for document in documents() {
        let text = read(&document);
        let dir = Path::new(&document).parent().unwrap_or_else(|| Path::new(""));
        for (number, line) in prose_lines(&text) {
            for target in link_targets(line) {
                if is_external_or_anchor(&target) {
                    continue;
                }
                let path = target.split('#').next().unwrap_or_default();
                if root.join(dir).join(path).exists() {
                    continue;
                }
                let known = |&(file, link): &(&str, &str)| file == document && link == target;
                if KNOWN_BROKEN_LINKS.iter().any(known) {
                    still_listed.retain(|entry| !known(entry));
                } else {
                    broken.push(format!("{document}:{number}: link to {target}"));
                }
            }
        }
    }
    // Repository paths written as code must exist too, in the pages that promise to be current.
    let mut path_checked = vec!["docs/architecture.md".to_owned(), "docs/extending.md".to_owned()];
    path_checked.extend(crate_readmes());
    for document in path_checked {
        let text = read(&document);
        for (number, line) in prose_lines(&text) {
            for code in code_spans(line).filter(|code| is_repo_path(code)) {
                if !root.join(code).exists() {
                    broken.push(format!("{document}:{number}: path `{code}`"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "these do not exist:\n{}", broken.join("\n"));
    assert!(
        still_listed.is_empty(),
        "KNOWN_BROKEN_LINKS lists links that now resolve or are gone; remove them: {still_listed:?}"
    );
}

#[test]
fn the_event_catalogue_lists_every_event_type_and_no_other() {
    let doc = read("docs/events.md");
    let listed: Vec<&str> = prose_lines(&doc)
        .into_iter()
        .filter_map(|(_, line)| line.strip_prefix("| `orderly."))
        .filter_map(|rest| rest.split_once('`').map(|(name, _)| name))
        .collect();
    let expected: Vec<String> = orderly_domain::EventType::ALL
        .iter()
        .map(|event_type| event_type.name().trim_start_matches("orderly.").to_owned())
        .collect();
    assert_eq!(listed, expected, "docs/events.md's table must list EventType::ALL, in order");
}

#[test]
fn every_adr_is_listed_in_the_adr_index() {
    let index = read("docs/adr/README.md");
    let linked: Vec<String> = prose_lines(&index)
        .into_iter()
        .flat_map(|(_, line)| link_targets(line))
        .map(|target| target.split('#').next().unwrap_or_default().to_owned())
        .collect();
    let dir = repo_root().join("docs/adr");
    let mut missing: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("listing {}: {error}", dir.display()))
        .map(|entry| entry.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .filter(|name| {
            let number = name.get(..4).unwrap_or_default();
            number.len() == 4
                && number.bytes().all(|byte| byte.is_ascii_digit())
                && name[4..].starts_with('-')
                && name.ends_with(".md")
        })
        .filter(|name| !linked.iter().any(|target| target == name))
        .collect();
    missing.sort();
    assert!(missing.is_empty(), "docs/adr/README.md does not link to: {missing:?}");
}

mod helpers {
    use super::*;

    #[test]
    fn links_inside_code_spans_and_fences_are_not_links() {
        assert_eq!(link_targets("see [a](a.md) and `[b](b.md)`"), vec!["a.md"]);
        assert_eq!(link_targets("[t](x.md \"title\") [u](<y z.md>)"), vec!["x.md", "y z.md"]);
        let text = "one\n```md\n[a](gone.md)\n```\ntwo";
        assert_eq!(prose_lines(text), vec![(1, "one"), (5, "two")]);
    }

    #[test]
    fn only_plain_repository_paths_are_checked() {
        assert!(is_repo_path("crates/api/src/lib.rs"));
        assert!(!is_repo_path("crates/application/tests/{orders,products}.rs"));
        assert!(!is_repo_path("docs/adr/*.md"));
        assert!(!is_repo_path("src/lib.rs"));
        assert!(!is_repo_path("make deps-check"));
    }
}
