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
}
