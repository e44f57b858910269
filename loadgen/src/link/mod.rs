//! The packet-level network emulator (issue 11), in user space like mahimahi's delay, loss and
//! link shells: TCP itself sees the RTT, the losses and the bottleneck (handshakes, slow start,
//! retransmissions, head-of-line blocking), not a byte stream delayed by a proxy.
//!
//! ```text
//!  namespace NAME-PID-N-client              this process              namespace NAME-PID-N-server
//!  link-client 10.77.0.1 --TUN--> [loss -> drop-tail queue -> rate -> delay] --TUN--> link-server 10.77.0.2
//!                        <--TUN-- [loss -> drop-tail queue -> rate -> delay] <--TUN--
//! ```
//!
//! The two sides are network namespaces joined only through this process: each holds one TUN
//! device with a /32 point-to-point route to the other side's address and no other route, so
//! their addresses exist nowhere else and nothing sent inside can leave. Every IP packet is
//! read from one TUN device and written, when due, into the other one (MTU 1500).
//!
//! - [`spec`]: the settings and their flag parsers; [`shaper`]: one direction's loss, queue,
//!   rate and delay as pure logic; [`emulator`]: the threads that move packets on time;
//!   [`netns`]: namespaces and TUN devices; [`shell`]: the `link` subcommand; [`through`]:
//!   `run --link`, a run whose subscribers reach the server through the link.
//!
//! [`Link`] removes everything it made when dropped: on return, on error and on a panic. The
//! shell adds SIGINT and SIGTERM. Only SIGKILL can leave a namespace behind (`ip netns del`).
//!
//! ```no_run
//! # fn demo() -> Result<(), pushlab_loadgen::link::LinkError> {
//! use pushlab_loadgen::link::{Link, LinkSpec};
//! let link = Link::up("lab", &LinkSpec { rtt: std::time::Duration::from_millis(100), ..LinkSpec::default() })?;
//! println!("ip netns exec {} curl http://{}:8080/", link.client.namespace, link.server.address);
//! let report = link.down();
//! # Ok(()) }
//! ```

pub mod emulator;
pub mod netns;
pub mod shaper;
pub mod shell;
pub mod spec;
pub mod through;

use std::io;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

pub use emulator::{DirectionCounters, DirectionReport};
pub use netns::{enter_namespace, run_in_namespace};
pub use spec::{parse_link, LinkSpec, QueueLimit};
pub use through::run_through_link;

use emulator::Direction;
use netns::Namespace;
use shaper::Shaper;

/// The client side's address (inside its namespace only).
pub const CLIENT_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The server side's address (inside its namespace only).
pub const SERVER_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

/// Why the link could not come up.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(
        "the link needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN, to make network namespaces and \
         TUN devices): run it as root, e.g. with sudo"
    )]
    NotPermitted,
    #[error("--name {0:?}: use 1 to 24 letters, digits, '-' or '_'")]
    BadName(String),
    #[error("{0}")]
    BadSpec(String),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("{command} failed: {stderr}")]
    Command { command: String, stderr: String },
}

/// One side of the link.
#[derive(Clone, Debug)]
pub struct Side {
    /// Network namespace name: run a command there with `ip netns exec NAMESPACE CMD`.
    pub namespace: String,
    /// This side's address; the other side reaches it through the link.
    pub address: Ipv4Addr,
    /// The TUN device inside the namespace.
    pub device: &'static str,
}

/// A running link. Dropping it (or [`Link::down`]) stops the pump and removes the TUN devices
/// and both namespaces.
pub struct Link {
    pub spec: LinkSpec,
    pub client: Side,
    pub server: Side,
    stop: Arc<AtomicBool>,
    /// client->server, server->client.
    directions: Vec<Direction>,
    // Dropped after the pump's threads stop (their files) and before the namespaces.
    _namespaces: [Namespace; 2],
}

/// What the link did, per direction, from up to down.
#[derive(Debug)]
pub struct LinkReport {
    pub directions: Vec<DirectionReport>,
}

static LINKS_MADE: AtomicU64 = AtomicU64::new(0);

impl Link {
    /// Makes both namespaces and TUN devices and starts the pump. Names are
    /// `NAME-PID-N-client` and `NAME-PID-N-server`, N counting links made by this process, so
    /// two runs never collide.
    pub fn up(name: &str, spec: &LinkSpec) -> Result<Link, LinkError> {
        let name_ok = !name.is_empty()
            && name.len() <= 24
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(LinkError::BadName(name.to_string()));
        }
        spec.check().map_err(LinkError::BadSpec)?;
        netns::check_privileges()?;
        let n = LINKS_MADE.fetch_add(1, Ordering::Relaxed);
        let base = format!("{name}-{}-{n}", std::process::id());
        let client_ns = Namespace::create(&format!("{base}-client"))?;
        let server_ns = Namespace::create(&format!("{base}-server"))?;
        let client = Side {
            namespace: client_ns.name().to_string(),
            address: CLIENT_ADDRESS,
            device: "link-client",
        };
        let server = Side {
            namespace: server_ns.name().to_string(),
            address: SERVER_ADDRESS,
            device: "link-server",
        };
        let client_tun =
            Arc::new(client_ns.open_tun(client.device, CLIENT_ADDRESS, SERVER_ADDRESS)?);
        let server_tun =
            Arc::new(server_ns.open_tun(server.device, SERVER_ADDRESS, CLIENT_ADDRESS)?);
        let stop = Arc::new(AtomicBool::new(false));
        let mut link = Link {
            spec: spec.clone(),
            client,
            server,
            stop: stop.clone(),
            directions: Vec::new(),
            _namespaces: [client_ns, server_ns],
        };
        let spawn_err = |e| LinkError::Io {
            what: "starting the link's threads".into(),
            source: e,
        };
        let up = Direction::spawn(
            "client->server",
            client_tun.clone(),
            server_tun.clone(),
            Shaper::new(spec, 0),
            stop.clone(),
        )
        .map_err(spawn_err)?;
        link.directions.push(up);
        let down = Direction::spawn(
            "server->client",
            server_tun,
            client_tun,
            Shaper::new(spec, 1),
            stop,
        )
        .map_err(spawn_err)?;
        link.directions.push(down);
        Ok(link)
    }

    /// Live counters: `[client->server, server->client]`.
    pub fn counters(&self) -> Vec<Arc<DirectionCounters>> {
        self.directions.iter().map(|d| d.counters.clone()).collect()
    }

    /// Stops the pump, removes everything, and reports.
    pub fn down(mut self) -> LinkReport {
        self.stop_pump()
    }

    fn stop_pump(&mut self) -> LinkReport {
        self.stop.store(true, Ordering::Relaxed);
        LinkReport {
            directions: self.directions.drain(..).map(Direction::join).collect(),
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // The threads hold the TUN files: stop them first so the devices go with the files,
        // then the namespaces are removed (field drop).
        self.stop_pump();
    }
}

impl LinkReport {
    /// Packets written to the far side, both directions.
    pub fn packets_out(&self) -> u64 {
        self.directions.iter().map(|d| d.packets_out).sum()
    }

    /// CPU time of the pump per packet read, microseconds.
    pub fn cpu_us_per_packet(&self) -> f64 {
        let cpu: u64 = self.directions.iter().map(|d| d.cpu_ns).sum();
        let packets: u64 = self.directions.iter().map(|d| d.packets_in).sum();
        cpu as f64 / 1e3 / packets.max(1) as f64
    }

    /// One line per direction: packets, drops, lateness percentiles, CPU.
    pub fn lines(&self) -> Vec<String> {
        self.directions
            .iter()
            .map(|d| {
                let us = |q: f64| d.late_ns.value_at_quantile(q) as f64 / 1e3;
                format!(
                    "{}: {} packets in, {} out ({} bytes), dropped {} by loss, {} by the full \
                     queue, {} over the in-flight cap, {} refused by the device; late by p50 {:.0} us, p99 {:.0} us, \
                     max {:.0} us; CPU {:.1} us per packet",
                    d.name,
                    d.packets_in,
                    d.packets_out,
                    d.bytes_out,
                    d.lost_packets,
                    d.queue_full_packets,
                    d.overflow_packets,
                    d.write_errors,
                    us(0.5),
                    us(0.99),
                    d.late_ns.max() as f64 / 1e3,
                    d.cpu_ns as f64 / 1e3 / d.packets_in.max(1) as f64,
                )
            })
            .collect()
    }
}
