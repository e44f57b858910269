//! The `link` subcommand: `link up` holds a link until SIGINT/SIGTERM; `link ... -- CMD`
//! brings one up, runs an optional server command on the server side and CMD on the client
//! side, and tears everything down when CMD exits, with CMD's exit status.
//!
//! ```text
//! $ sudo pushlab-loadgen link --rtt 100ms --loss 1% --server-cmd 'pushlab-loadgen serve --bind {server}:8080' \
//!       --wait-port 8080 -- curl -s http://10.77.0.2:8080/poll/t?since=0
//! ```

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, Signal, SignalKind};

use super::spec::{
    parse_burst, parse_delay, parse_loss, parse_queue, parse_rate, LinkSpec, QueueLimit,
    DEFAULT_QUEUE,
};
use super::{Link, LinkReport};

/// How long `--wait-port` waits for the server side to accept.
const WAIT_PORT_FOR: Duration = Duration::from_secs(10);
/// How long a child gets to exit after SIGTERM/SIGINT before SIGKILL.
const CHILD_GRACE: Duration = Duration::from_secs(3);

/// `link [FLAGS] [--server-cmd CMD2] -- CMD ARGS` or `link up [FLAGS]`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct LinkArgs {
    #[command(subcommand)]
    pub up: Option<LinkCommand>,
    #[command(flatten)]
    pub flags: LinkFlags,
    /// Run this (with `sh -c`) on the server side first; `{server}` becomes the server side's
    /// address. Stopped (SIGTERM, then SIGKILL after 3 s) when CMD exits.
    #[arg(long, value_name = "CMD2")]
    pub server_cmd: Option<String>,
    /// Before CMD starts, wait (at most 10 s) until the server side accepts TCP on this port.
    #[arg(long, value_name = "PORT")]
    pub wait_port: Option<u16>,
    /// The command to run on the client side.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum LinkCommand {
    /// Bring the link up, print both sides, and hold it until Ctrl-C or SIGTERM.
    Up(LinkFlags),
}

/// The link's flags, the same for both forms.
#[derive(Args, Debug, Clone)]
pub struct LinkFlags {
    /// Round-trip time added by the link (half each way): 100ms, 0.5ms, 0.
    #[arg(long, default_value = "0", value_parser = parse_delay, allow_hyphen_values = true)]
    pub rtt: Duration,
    /// Uniform jitter of each one-way delay, ± this: 5ms.
    #[arg(long, default_value = "0", value_parser = parse_delay, allow_hyphen_values = true)]
    pub jitter: Duration,
    /// Packets lost per direction: 1%.
    #[arg(long, default_value = "0", value_parser = parse_loss, allow_hyphen_values = true)]
    pub loss: f64,
    /// Make losses bursty (Gilbert-Elliott) with this mean burst length, packets.
    #[arg(long, value_parser = parse_burst, value_name = "PACKETS")]
    pub loss_burst: Option<f64>,
    /// Bottleneck rate per direction: 10mbit, 500kbit, 1gbit. Unlimited when absent.
    #[arg(long, value_parser = parse_rate, allow_hyphen_values = true)]
    pub rate: Option<u64>,
    /// The bottleneck's drop-tail queue: 100pkt or 64KiB [default: 1000pkt].
    #[arg(long, value_parser = parse_queue)]
    pub queue: Option<QueueLimit>,
    /// Let jitter reorder packets.
    #[arg(long)]
    pub reorder: bool,
    /// Seed of the loss and jitter draws [default: from the clock].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Prefix of the namespace names (NAME-PID-N-client, NAME-PID-N-server).
    #[arg(long, default_value = "pushlab")]
    pub name: String,
}

impl LinkFlags {
    /// The checked settings.
    pub fn spec(&self) -> LinkSpec {
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
        LinkSpec {
            rtt: self.rtt,
            jitter: self.jitter,
            loss: self.loss,
            loss_burst_packets: self.loss_burst,
            rate_bit_per_s: self.rate,
            queue: self.queue.unwrap_or(DEFAULT_QUEUE),
            reorder: self.reorder,
            seed,
        }
    }
}

/// Runs either form; returns the exit status to leave with (CMD's, or 0 for `link up`).
pub async fn cli(args: LinkArgs) -> anyhow::Result<i32> {
    // Installed before anything is made, so a signal can never skip the teardown.
    let mut signals = Signals {
        interrupt: signal(SignalKind::interrupt())?,
        terminate: signal(SignalKind::terminate())?,
    };
    match &args.up {
        Some(LinkCommand::Up(flags)) => {
            let link = Link::up(&flags.name, &flags.spec())?;
            describe(&link, |line| println!("{line}"));
            println!("holding the link until Ctrl-C or SIGTERM");
            signals.next().await;
            print_report(&link.down());
            Ok(0)
        }
        None => shell(&args, &mut signals).await,
    }
}

struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    /// The next SIGINT or SIGTERM, as its number.
    async fn next(&mut self) -> i32 {
        tokio::select! {
            _ = self.interrupt.recv() => libc::SIGINT,
            _ = self.terminate.recv() => libc::SIGTERM,
        }
    }
}

async fn shell(args: &LinkArgs, signals: &mut Signals) -> anyhow::Result<i32> {
    let link = Link::up(&args.flags.name, &args.flags.spec())?;
    describe(&link, |line| eprintln!("{line}"));
    let server_address = link.server.address.to_string();
    let env = [
        ("PUSHLAB_LINK_SERVER", server_address.clone()),
        ("PUSHLAB_LINK_CLIENT", link.client.address.to_string()),
    ];
    let mut server = match &args.server_cmd {
        Some(cmd) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &link.server.namespace, "sh", "-c"])
                .arg(cmd.replace("{server}", &server_address))
                .envs(env.clone())
                .process_group(0);
            Some(
                c.spawn()
                    .map_err(|e| anyhow::anyhow!("--server-cmd: {e}"))?,
            )
        }
        None => None,
    };
    // Whatever happens to CMD, the server command is stopped before the link goes down.
    let outcome = run_client(args, &link, &env, signals).await;
    if let Some(s) = server.as_mut() {
        stop_child(s, libc::SIGTERM, true).await?;
    }
    print_report(&link.down());
    Ok(exit_code(outcome?))
}

/// Waits for `--wait-port`, runs CMD on the client side until it exits or a signal comes.
async fn run_client(
    args: &LinkArgs,
    link: &Link,
    env: &[(&str, String); 2],
    signals: &mut Signals,
) -> anyhow::Result<ExitStatus> {
    if let Some(port) = args.wait_port {
        let ns = link.client.namespace.clone();
        let to = std::net::SocketAddr::from((link.server.address, port));
        tokio::task::spawn_blocking(move || wait_for_port(&ns, to)).await??;
    }
    let mut client = Command::new("ip")
        .args(["netns", "exec", &link.client.namespace])
        .args(&args.command)
        .envs(env.iter().cloned())
        .spawn()
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.command[0]))?;
    Ok(tokio::select! {
        s = client.wait() => s?,
        sig = signals.next() => stop_child(&mut client, sig, false).await?,
    })
}

/// Sends `sig` (to the child's whole process group when `group`), waits [`CHILD_GRACE`],
/// then SIGKILL.
async fn stop_child(child: &mut Child, sig: i32, group: bool) -> std::io::Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    if let Some(pid) = child.id() {
        let target = if group { -(pid as i32) } else { pid as i32 };
        // SAFETY: kill() on the id of a child this process spawned and has not reaped.
        unsafe { libc::kill(target, sig) };
        if let Ok(status) = tokio::time::timeout(CHILD_GRACE, child.wait()).await {
            return status;
        }
        // SAFETY: as above.
        unsafe { libc::kill(target, libc::SIGKILL) };
    }
    child.wait().await
}

/// Waits until `to` accepts a TCP connection from the client side.
fn wait_for_port(client_ns: &str, to: std::net::SocketAddr) -> anyhow::Result<()> {
    let ns = client_ns.to_string();
    super::run_in_namespace(&ns, || {
        let deadline = Instant::now() + WAIT_PORT_FOR;
        loop {
            match std::net::TcpStream::connect_timeout(&to, Duration::from_secs(1)) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    })
    .map_err(|e| anyhow::anyhow!("--wait-port: nothing accepted on {to} within 10 s: {e}"))
}

/// A shell's convention: the code, or 128 + the signal that ended the process.
fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

fn describe(link: &Link, mut out: impl FnMut(&str)) {
    out(&format!("link up: {}", link.spec));
    for (label, side) in [("client", &link.client), ("server", &link.server)] {
        out(&format!(
            "{label} side: {}  (device {}): ip netns exec {} CMD",
            side.address, side.device, side.namespace
        ));
    }
}

fn print_report(report: &LinkReport) {
    eprintln!("link down; everything it made is removed");
    for line in report.lines() {
        eprintln!("  {line}");
    }
}
