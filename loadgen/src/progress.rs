//! Live progress while a run goes: one line per transport with elapsed time, connected
//! subscribers, delivered messages per second, p99 so far and errors. Drawn only when stdout
//! is a terminal (indicatif draws to stderr; nothing is drawn otherwise).
//!
//! ```text
//! ⠋ ws       4.2s  connected 50/50  delivered 2100 (500/s)  p99 812us  errors 0  publishing
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use pushlab_proto::Transport;
use tokio::time::Instant;

use crate::config::RunConfig;
use crate::record::Recorder;

/// Draws phases, or does nothing when disabled.
#[derive(Debug)]
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        Progress {
            multi: enabled.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    /// Bars for one phase.
    pub fn phase(
        &self,
        phase: &[Transport],
        _recs: &BTreeMap<Transport, Arc<Recorder>>,
        cfg: &RunConfig,
    ) -> PhaseBars {
        let bars = match &self.multi {
            None => Vec::new(),
            Some(m) => phase
                .iter()
                .map(|&t| {
                    let b = m.add(ProgressBar::new_spinner());
                    b.set_style(
                        ProgressStyle::with_template("{spinner} {prefix:8} {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    b.set_prefix(t.as_str());
                    b.enable_steady_tick(Duration::from_millis(120));
                    (t, b)
                })
                .collect(),
        };
        PhaseBars {
            bars,
            started: Instant::now(),
            clients: cfg.clients,
        }
    }
}

/// One phase's bars.
#[derive(Debug)]
pub struct PhaseBars {
    bars: Vec<(Transport, ProgressBar)>,
    started: Instant,
    clients: u64,
}

impl PhaseBars {
    pub fn tick(&self, recs: &BTreeMap<Transport, Arc<Recorder>>, stage: &str) {
        if self.bars.is_empty() {
            return;
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        for (t, bar) in &self.bars {
            let r = &recs[t];
            let delivered = Recorder::get(&r.delivered_messages);
            let rate = if elapsed > 0.0 {
                delivered as f64 / elapsed
            } else {
                0.0
            };
            let p99 = r.p99_so_far().map_or("-".to_string(), |v| format!("{v}us"));
            bar.set_message(format!(
                "{elapsed:5.1}s  connected {}/{}  delivered {delivered} ({rate:.0}/s)  p99 {p99}  errors {}  {stage}",
                r.open_connections.load(std::sync::atomic::Ordering::Relaxed).max(0),
                self.clients,
                Recorder::get(&r.errors),
            ));
        }
    }

    pub fn finish(&self, recs: &BTreeMap<Transport, Arc<Recorder>>) {
        self.tick(recs, "done");
        for (_, b) in &self.bars {
            b.finish();
        }
    }
}
