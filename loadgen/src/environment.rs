//! The environment block of a result: the machine, the OS, and the build that made the run
//! (rustc, crate versions and git commit are captured at build time by `build.rs`).

use std::collections::BTreeMap;

use pushlab_proto::result::Environment;

/// Describes this machine and build. `target` names what was measured.
pub fn collect(target: String) -> Environment {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "model name" || k.trim() == "Hardware").then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get() as u32);
    let memory_bytes = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb * 1024)
        })
        .unwrap_or(0);
    let (hostname, kernel) = uname();
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| std::env::consts::OS.to_string());
    let mut crate_versions: BTreeMap<String, String> = env!("PUSHLAB_CRATE_VERSIONS")
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    crate_versions.insert(
        "pushlab-loadgen".into(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    Environment {
        hostname,
        cpu_model,
        cores,
        memory_bytes,
        kernel,
        os,
        rustc: env!("PUSHLAB_RUSTC").to_string(),
        crate_versions,
        git_commit: env!("PUSHLAB_GIT_COMMIT").to_string(),
        target,
    }
}

/// (hostname, "Linux 6.1.0-... x86_64") from uname(2).
fn uname() -> (String, String) {
    // SAFETY: utsname is plain data; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: we pass a valid pointer to our own struct.
    if unsafe { libc::uname(&mut u) } != 0 {
        return ("unknown".into(), "unknown".into());
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (
        field(&u.nodename),
        format!(
            "{} {} {}",
            field(&u.sysname),
            field(&u.release),
            field(&u.machine)
        ),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn describes_this_machine() {
        let e = super::collect("test".into());
        assert!(e.cores >= 1);
        assert!(e.rustc.starts_with("rustc "), "{}", e.rustc);
        assert!(e.crate_versions.contains_key("tokio"));
        assert!(!e.kernel.is_empty());
    }
}
