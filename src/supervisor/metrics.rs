//! `metrics_listen`: the loop's side of the HTTP metrics endpoint
//! ([`crate::control::http`]): listening, and answering each scrape with
//! [`crate::control::metrics::render`] of a fresh snapshot.

use super::core::Supervisor;
use crate::config::Config;
use crate::control::http::HttpServer;
use crate::control::metrics;
use crate::sys::epoll::Epoll;
use crate::sys::timer::now_ms;

/// The endpoint of `config.metrics_listen`, if set; one that cannot listen is logged
/// and left out: metrics are not worth stopping the apps for.
pub(super) fn listen(config: &Config, epoll: &Epoll, token: u64) -> Option<HttpServer> {
    let addr = config.metrics_listen?;
    match HttpServer::bind(addr, epoll, token) {
        Ok(server) => {
            log::info!("serving metrics at http://{addr}/metrics");
            Some(server)
        }
        Err(e) => {
            log::error!("metrics_listen {addr}: {e}; metrics are not served");
            None
        }
    }
}

impl Supervisor {
    /// The metrics listener is readable: new scrapers.
    pub(super) fn metrics_accept(&mut self) {
        if let Some(http) = &mut self.metrics {
            http.accept(&self.epoll, now_ms());
        }
    }

    /// A scraper's socket is ready: its request is answered with the metrics of now.
    pub(super) fn metrics_ready(&mut self, token: u64) {
        let Some(http) = &mut self.metrics else {
            return;
        };
        if http.on_ready(&self.epoll, token).is_none() {
            return;
        }
        let (apps, own) = self.snapshot();
        let body = metrics::render(&apps, &own);
        if let Some(http) = &mut self.metrics {
            http.respond(&self.epoll, token, metrics::CONTENT_TYPE, &body);
        }
    }

    /// TEMPORARY, until the lead's `snapshot` (with the control socket's `status`)
    /// lands: what the loop knows of each app and of itself, cheaply. Restarts, exits
    /// and berth's uptime are left at zero here.
    pub(super) fn snapshot(
        &self,
    ) -> (
        Vec<crate::control::status::AppStatus>,
        crate::control::status::OwnStatus,
    ) {
        use crate::control::status::{AppStatus, OwnStatus};
        let apps = self
            .apps
            .values()
            .map(|a| {
                let usage = a.life.run().map(|r| r.group.usage());
                AppStatus {
                    name: a.name().to_owned(),
                    state: a.life.phase.name(),
                    health: a
                        .life
                        .phase
                        .health()
                        .filter(|h| *h != super::policy::Health::None)
                        .map(|h| h.name()),
                    pid: a.pid(),
                    memory: usage.as_ref().and_then(|u| u.memory),
                    memory_limit: a.manifest().resources.memory.map(|m| m.bytes()),
                    cpu_ns: usage.as_ref().and_then(|u| u.cpu_ns),
                    oom_kills: usage.map_or(0, |u| u.oom_kills),
                    ..AppStatus::default()
                }
            })
            .collect();
        let rss = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map_or(0, |pages| pages * 4096);
        let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
        let own = OwnStatus {
            rss,
            fds,
            uptime_ms: 0,
        };
        (apps, own)
    }
}
