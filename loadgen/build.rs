//! Captures what the result file's environment block needs from build time: the rustc
//! version, the git commit, and the versions of the crates that shape the figures.

use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("-V")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    println!("cargo:rustc-env=PUSHLAB_RUSTC={}", version.trim());

    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=PUSHLAB_GIT_COMMIT={commit}");
    // Rebuild when HEAD moves: HEAD itself and the one branch it names (not the whole
    // refs/heads directory, which every other worktree's commit touches, nor the index).
    let mut watched = vec!["../.git/HEAD".to_string()];
    if let Some(branch) = std::fs::read_to_string("../.git/HEAD")
        .ok()
        .and_then(|h| h.trim().strip_prefix("ref: ").map(str::to_string))
    {
        watched.push(format!("../.git/{branch}"));
        watched.push("../.git/packed-refs".into());
    }
    for p in &watched {
        if std::path::Path::new(p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }

    let lock = std::fs::read_to_string("../Cargo.lock").unwrap_or_default();
    let wanted = [
        "tokio",
        "hyper",
        "hyper-util",
        "tokio-tungstenite",
        "tungstenite",
        "hdrhistogram",
        "serde_json",
    ];
    let mut found = Vec::new();
    let mut name = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_string());
        } else if let Some(v) = line.strip_prefix("version = ") {
            if let Some(n) = name.take() {
                if wanted.contains(&n.as_str()) && !found.iter().any(|(k, _)| k == &n) {
                    found.push((n, v.trim_matches('"').to_string()));
                }
            }
        }
    }
    let joined: Vec<String> = found.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!(
        "cargo:rustc-env=PUSHLAB_CRATE_VERSIONS={}",
        joined.join(";")
    );
    println!("cargo:rerun-if-changed=../Cargo.lock");
    println!("cargo:rerun-if-changed=build.rs");
}
