//! Network values of a manifest: the network mode, port forwards, ports, probe URLs.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use super::AppName;
use crate::manifest::units::deserialize_from_str;

/// How an app is networked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// Its own network namespace with only loopback.
    #[default]
    None,
    /// The host's network namespace.
    Host,
    /// Its own namespace, a veth on the berth bridge, an address, port forwards.
    Bridge,
    /// The network namespace of another app.
    Container(AppName),
}

impl FromStr for NetworkMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(NetworkMode::None),
            "host" => Ok(NetworkMode::Host),
            "bridge" => Ok(NetworkMode::Bridge),
            _ => match s.strip_prefix("container:") {
                Some(app) => app.parse().map(NetworkMode::Container),
                None => Err(format!(
                    "invalid network mode {s:?}: use none, host, bridge or container:<app>"
                )),
            },
        }
    }
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            NetworkMode::None => f.write_str("none"),
            NetworkMode::Host => f.write_str("host"),
            NetworkMode::Bridge => f.write_str("bridge"),
            NetworkMode::Container(app) => write!(f, "container:{app}"),
        }
    }
}
deserialize_from_str!(NetworkMode, "none, host, bridge or container:<app>");

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// A port forward: `[HOST_IP:]HOST_PORT:APP_PORT[/tcp|/udp]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMapping {
    /// The host address to listen on; `None` is every address.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub app_port: u16,
    pub protocol: Protocol,
}

impl PortMapping {
    /// True if both forwards would claim the same host socket.
    pub fn clashes_with(&self, other: &PortMapping) -> bool {
        self.host_port == other.host_port
            && self.protocol == other.protocol
            && (self.host_ip.is_none() || other.host_ip.is_none() || self.host_ip == other.host_ip)
    }
}

fn parse_port(s: &str) -> Option<u16> {
    s.parse().ok().filter(|&p| p != 0)
}

impl FromStr for PortMapping {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid port mapping {s:?}: use HOST_PORT:APP_PORT with an optional HOST_IP: before and /tcp or /udp after, ports 1 to 65535"
            )
        };
        let (ports, protocol) = match s.rsplit_once('/') {
            Some((p, "tcp")) => (p, Protocol::Tcp),
            Some((p, "udp")) => (p, Protocol::Udp),
            Some(_) => return Err(bad()),
            None => (s, Protocol::Tcp),
        };
        let parts: Vec<&str> = ports.split(':').collect();
        let (host_ip, host, app) = match parts.as_slice() {
            [host, app] => (None, host, app),
            [ip, host, app] => (Some(ip.parse().map_err(|_| bad())?), host, app),
            _ => return Err(bad()),
        };
        Ok(PortMapping {
            host_ip,
            host_port: parse_port(host).ok_or_else(bad)?,
            app_port: parse_port(app).ok_or_else(bad)?,
            protocol,
        })
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if let Some(ip) = self.host_ip {
            write!(f, "{ip}:")?;
        }
        write!(f, "{}:{}/{}", self.host_port, self.app_port, self.protocol)
    }
}
deserialize_from_str!(PortMapping, "a port mapping such as 8080:80/tcp");

/// A TCP port, 1 to 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port(pub u16);

impl FromStr for Port {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_port(s)
            .map(Port)
            .ok_or_else(|| format!("invalid port {s:?}: use a number from 1 to 65535"))
    }
}
deserialize_from_str!(Port, "a port number");

/// A plain `http://` URL for a health probe: host (IPv4 or `localhost`), port, path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub host: Ipv4Addr,
    pub port: u16,
    pub path: String,
    text: String,
}

impl HttpUrl {
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for HttpUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid http url {s:?}: {why}");
        let rest = s
            .strip_prefix("http://")
            .ok_or_else(|| bad("use http://HOST[:PORT]/PATH (no https: the probe runs inside the app's own network)"))?;
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h,
                parse_port(p).ok_or_else(|| bad("port must be 1 to 65535"))?,
            ),
            None => (authority, 80),
        };
        let host = match host {
            "localhost" => Ipv4Addr::LOCALHOST,
            h => h
                .parse()
                .map_err(|_| bad("host must be an IPv4 address or localhost"))?,
        };
        if path
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(bad("path must not contain spaces or control characters"));
        }
        Ok(HttpUrl {
            host,
            port,
            path: path.to_owned(),
            text: s.to_owned(),
        })
    }
}
deserialize_from_str!(HttpUrl, "an http:// url");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_modes() {
        assert_eq!("bridge".parse(), Ok(NetworkMode::Bridge));
        assert_eq!(
            "container:broker".parse(),
            Ok(NetworkMode::Container("broker".parse().unwrap()))
        );
        assert!(
            "container:"
                .parse::<NetworkMode>()
                .unwrap_err()
                .starts_with("invalid name")
        );
        assert!(
            "nat"
                .parse::<NetworkMode>()
                .unwrap_err()
                .starts_with("invalid network mode \"nat\"")
        );
    }

    #[test]
    fn port_mappings() {
        let p: PortMapping = "8080:80".parse().unwrap();
        assert_eq!(
            (p.host_ip, p.host_port, p.app_port, p.protocol),
            (None, 8080, 80, Protocol::Tcp)
        );
        let p: PortMapping = "127.0.0.1:53:5353/udp".parse().unwrap();
        assert_eq!(p.to_string(), "127.0.0.1:53:5353/udp");
        for bad in ["80", "0:80", "8080:80/sctp", "70000:80", "x:1:2", "1:2:3:4"] {
            assert!(
                bad.parse::<PortMapping>()
                    .unwrap_err()
                    .starts_with("invalid port mapping"),
                "{bad}"
            );
        }
        let any: PortMapping = "8080:80".parse().unwrap();
        let lo: PortMapping = "127.0.0.1:8080:81".parse().unwrap();
        let other: PortMapping = "10.0.0.1:8080:81".parse().unwrap();
        let udp: PortMapping = "8080:80/udp".parse().unwrap();
        assert!(any.clashes_with(&lo));
        assert!(!lo.clashes_with(&other));
        assert!(!any.clashes_with(&udp));
    }

    #[test]
    fn http_urls() {
        let u: HttpUrl = "http://127.0.0.1:8080/healthz".parse().unwrap();
        assert_eq!(
            (u.host, u.port, u.path.as_str()),
            (Ipv4Addr::LOCALHOST, 8080, "/healthz")
        );
        let u: HttpUrl = "http://localhost".parse().unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        assert!(
            "https://127.0.0.1/"
                .parse::<HttpUrl>()
                .unwrap_err()
                .contains("no https")
        );
        assert!(
            "http://example.com/"
                .parse::<HttpUrl>()
                .unwrap_err()
                .contains("IPv4 address or localhost")
        );
        assert!("http://127.0.0.1:0/".parse::<HttpUrl>().is_err());
    }
}
