//! Real MCP clients against the real gateway: the official Python SDK (`mcp` from PyPI) and the
//! TypeScript SDKs (`@modelcontextprotocol/client` 2.x and `@modelcontextprotocol/sdk` 1.x from
//! npm), each in the protocol eras it speaks, run the flows in `tests/mcp/clients/`: two agents
//! with their own tokens doing ask → inbox → respond → the asker's wait returning the answer, a
//! `relay_to_human` answered by the client's elicitation callback, a schema the subset rejects,
//! calls without a token, ended sessions, and the HTTP API and MCP seeing the same elicitations.
//!
//! `scripts/test` installs the clients (into `target/mcp-clients/venv` and
//! `tests/mcp/clients/node/node_modules`); without them these tests fail and say so.

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::{ADMIN_TOKEN, repo, shared, target_dir};

/// Runs `program args…` in `dir` against the shared host; the flows print a line per step and
/// exit 0 only when every step passed.
#[track_caller]
fn flows(program: &Path, args: &[&str], dir: &str) {
    let dir = repo().join(dir);
    let out = Command::new(program)
        .args(args)
        .current_dir(&dir)
        .env("LH_URL", &shared().base)
        .env("LH_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap_or_else(|e| panic!("{} {args:?}: {e}", program.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}):\n{stdout}\n{}",
        program.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn python() -> PathBuf {
    let python = target_dir().join("mcp-clients/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run the tests with scripts/test, which installs the MCP clients",
        python.display()
    );
    python
}

#[track_caller]
fn node(mode: &str) {
    assert!(
        repo().join("tests/mcp/clients/node/node_modules").is_dir(),
        "the TypeScript SDKs are not installed: run the tests with scripts/test"
    );
    flows(
        Path::new("node"),
        &["flows.mjs", mode],
        "tests/mcp/clients/node",
    );
}

#[test]
fn the_python_sdk_in_its_2025_mode() {
    flows(
        &python(),
        &["flows.py", "legacy"],
        "tests/mcp/clients/python",
    );
}

#[test]
fn the_python_sdk_in_its_2026_mode() {
    flows(&python(), &["flows.py", "2026"], "tests/mcp/clients/python");
}

#[test]
fn the_typescript_sdk_2_in_its_2025_mode() {
    node("legacy");
}

#[test]
fn the_typescript_sdk_2_in_its_2026_mode() {
    node("2026");
}

#[test]
fn the_typescript_sdk_1() {
    node("v1");
}
