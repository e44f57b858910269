//! Network namespaces and TUN devices: the two sides of the link.
//!
//! A namespace is made and removed with iproute2 (`ip netns add/del`, which bind-mounts it at
//! `/run/netns/NAME` so `ip netns exec NAME CMD` finds it). The TUN device of a side is opened
//! by a short-lived thread that has joined that namespace (`setns`), so the device is born
//! there; it is not persistent, so it vanishes when this process closes its file (or dies).

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;

use super::LinkError;

/// `_IOW('T', 202, int)` from `<linux/if_tun.h>`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;
/// CAP_NET_ADMIN (TUN, addresses) and CAP_SYS_ADMIN (setns, the netns bind mount).
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;

/// `struct ifreq` as TUNSETIFF reads it: a name and the flags, padded to 40 bytes.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Refuses early, with one clear line, when this process cannot make namespaces and devices.
pub fn check_privileges() -> Result<(), LinkError> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    let has = |cap: u32| effective & (1 << cap) != 0;
    if has(CAP_NET_ADMIN) && has(CAP_SYS_ADMIN) {
        Ok(())
    } else {
        Err(LinkError::NotPermitted)
    }
}

/// Runs `ip ARGS`; an error carries the command and what it printed.
pub fn ip(args: &[&str]) -> Result<(), LinkError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| LinkError::Io {
            what: "running ip (is iproute2 installed?)".into(),
            source: e,
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(LinkError::Command {
        command: format!("ip {}", args.join(" ")),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// A namespace this process made; removed on drop.
#[derive(Debug)]
pub struct Namespace {
    name: String,
}

impl Namespace {
    /// `ip netns add NAME` and loopback up.
    pub fn create(name: &str) -> Result<Namespace, LinkError> {
        ip(&["netns", "add", name])?;
        let ns = Namespace {
            name: name.to_string(),
        };
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Opens a TUN device `dev` inside this namespace and gives it `local` with the point to
    /// point `peer` (a /32 route to the peer and nothing else: no default route, so nothing
    /// sent here can leave through anything but the link).
    pub fn open_tun(&self, dev: &str, local: Ipv4Addr, peer: Ipv4Addr) -> Result<File, LinkError> {
        let tun = run_in_namespace(&self.name, || open_tun(dev)).map_err(|e| LinkError::Io {
            what: format!("opening a TUN device in namespace {}", self.name),
            source: e,
        })?;
        let n = self.name.as_str();
        let (local, peer) = (local.to_string(), format!("{peer}/32"));
        // No IPv6 link-local address: the link carries only what the user sends.
        ip(&["-n", n, "link", "set", "dev", dev, "addrgenmode", "none"])?;
        ip(&["-n", n, "addr", "add", &local, "peer", &peer, "dev", dev])?;
        ip(&["-n", n, "link", "set", "dev", dev, "mtu", "1500", "up"])?;
        Ok(tun)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!(
                "pushlab-loadgen link: removing namespace {}: {e}",
                self.name
            );
        }
    }
}

/// Moves the calling thread into namespace `name` for good. Use it on a thread of its own:
/// every socket the thread opens afterwards lives in that namespace.
pub fn enter_namespace(name: &str) -> io::Result<()> {
    let ns = File::open(format!("/run/netns/{name}"))?;
    // SAFETY: setns on a descriptor we own; it changes only the calling thread.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` on a fresh thread inside namespace `name` and returns its result.
pub fn run_in_namespace<T: Send>(
    name: &str,
    f: impl FnOnce() -> io::Result<T> + Send,
) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter_namespace(name)?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
    })
}

fn open_tun(dev: &str) -> io::Result<File> {
    let tun = File::options()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: IFF_TUN | IFF_NO_PI,
        _pad: [0; 22],
    };
    let bytes = dev.as_bytes();
    if bytes.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "device name too long",
        ));
    }
    req.name[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: TUNSETIFF reads an ifreq, which `req` is laid out as, and outlives the call.
    if unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF as _, &mut req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(tun)
}
