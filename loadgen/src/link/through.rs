//! `run --link SPEC` (issue 11): one run measured through an emulated link.
//!
//! ```text
//!  client namespace                    this process                       server namespace
//!  subscribers' sockets ──────── TUN ── [link pump] ── TUN ───────── pushlab-server child
//!                                                                      publisher, scrapes
//! ```
//!
//! The link comes up, the server child (`pushlab-loadgen serve`) starts inside the server
//! namespace on [`SERVER_ADDRESS`], and the run goes on as usual except that every socket is
//! born in a namespace ([`crate::net::use_link_namespaces`]): subscribers on the client side,
//! so everything they send and receive crosses the link; the publisher, the `/metrics` scrapes
//! and the topic probes on the server side next to the server (a publisher is a backend), so
//! they do not cross it. Everything is removed when the run ends, fails or panics.

use std::path::Path;

use pushlab_proto::result::RunResult;

use super::{Link, LinkSpec, SERVER_ADDRESS};
use crate::config::{LinkConditions, RunConfig};
use crate::error::LoadgenError;

/// Puts sockets back into this process's namespace when the run ends, however it ends.
struct NamespacesInUse;

impl Drop for NamespacesInUse {
    fn drop(&mut self) {
        let _ = crate::net::use_link_namespaces(None);
    }
}

/// Runs `config` through a link of `spec` against a server child of `exe` (`None`: this
/// executable) started inside the link's server namespace; `config.target` and
/// `config.server_pid` are replaced by the child's, and `config.link` records `spec`. The
/// result's notes end with what the link did per direction (packets, drops, lateness, CPU).
///
/// Errors: the link cannot come up (not root, `ip` missing: [`LoadgenError::Other`] with the
/// reason), the child does not start, or the run itself fails.
pub async fn run_through_link(
    mut config: RunConfig,
    spec: &LinkSpec,
    exe: Option<&Path>,
) -> Result<RunResult, LoadgenError> {
    if !config.source_ips.is_empty() {
        return Err(LoadgenError::Other(
            "--source-ips cannot be used with --link (subscribers use the link's client address)"
                .into(),
        ));
    }
    let exe = match exe {
        Some(e) => e.to_path_buf(),
        None => std::env::current_exe().map_err(|e| LoadgenError::Io {
            context: "finding this executable".into(),
            error: e,
        })?,
    };
    let link = Link::up("run", spec).map_err(|e| LoadgenError::Other(format!("--link: {e}")))?;
    let server = crate::embedded::spawn_server_in(
        &exe,
        Some(&link.server.namespace),
        &format!("{SERVER_ADDRESS}:0"),
        &[],
    )
    .await?;
    config.set_target(server.url().parse().map_err(LoadgenError::from)?);
    config.server_pid = server.child.id();
    config.link = Some(LinkConditions::from(spec));
    crate::net::use_link_namespaces(Some((&link.client.namespace, &link.server.namespace)))
        .map_err(|e| LoadgenError::Io {
            context: "opening the link's namespaces".into(),
            error: e,
        })?;
    let in_use = NamespacesInUse;
    let result = crate::run(config).await;
    drop(in_use);
    server.stop().await;
    let report = link.down();
    let mut result = result?;
    result
        .notes
        .push(format!("through an emulated link: {spec}"));
    result
        .notes
        .extend(report.lines().into_iter().map(|l| format!("link {l}")));
    let retransmitted: Vec<String> = result
        .transports
        .iter()
        .filter_map(|t| Some((t.transport, t.retransmissions?)))
        .map(|(t, r)| {
            let server = match (r.server_segments, r.server_bytes) {
                (Some(s), Some(b)) => format!("server {s} segments / {b} B"),
                _ => "server unknown".into(),
            };
            format!(
                "{t}: subscribers {} segments / {} B, {server}",
                r.client_segments, r.client_bytes
            )
        })
        .collect();
    if !retransmitted.is_empty() {
        result.notes.push(format!(
            "TCP retransmissions (beside the byte split): {}",
            retransmitted.join("; ")
        ));
    }
    Ok(result)
}
