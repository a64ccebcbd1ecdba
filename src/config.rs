//! The environment contract (DESIGN.md, "Configuration"), read and validated once.
//!
//! Every `FERRIO_*` variable is parsed here and nowhere else. A bad value never falls back to the
//! default: [`Config::from_env`] returns a [`ConfigError`] whose one-line `Display` names the
//! variable, and the binary stops with it. An unset variable takes its default; a variable set to
//! the empty string is a bad value (unset it to get the default), so a half-written deployment
//! file is noticed instead of silently running with defaults.
//!
//! [`Config::from_lookup`] takes the lookup as an argument, so tests (and embedders) can build a
//! configuration from a map without touching the process environment.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Every variable this module reads, in the order of DESIGN.md's table.
pub const VARIABLES: &[&str] = &[
    "FERRIO_HOST",
    "FERRIO_PORT",
    "FERRIO_PATH",
    "FERRIO_NAMESPACES",
    "FERRIO_REDIS_URL",
    "FERRIO_REDIS_PREFIX",
    "FERRIO_NODE_ID",
    "FERRIO_PING_INTERVAL_MS",
    "FERRIO_PING_TIMEOUT_MS",
    "FERRIO_CONNECT_TIMEOUT_MS",
    "FERRIO_MAX_PAYLOAD",
    "FERRIO_REQUEST_TIMEOUT_MS",
    "FERRIO_CORS_ORIGINS",
    "FERRIO_SOCKET_MAILBOX",
    "FERRIO_ROOM_MAILBOX",
    "FERRIO_BRIDGE_MAILBOX",
    "FERRIO_SOCKET_BUFFER",
    "FERRIO_WORKERS",
];

/// Default listen host: every interface, as a server in a container expects.
pub const DEFAULT_HOST: &str = "0.0.0.0";
/// Default listen port, the one socket.io's documentation uses.
pub const DEFAULT_PORT: u16 = 3000;
/// Default Engine.IO path, the socket.io clients' default.
pub const DEFAULT_PATH: &str = "/socket.io/";
/// Default Redis channel prefix, the same as `@socket.io/redis-adapter`'s `key`.
pub const DEFAULT_REDIS_PREFIX: &str = "socket.io";
/// Default Engine.IO ping interval (Node's default).
pub const DEFAULT_PING_INTERVAL_MS: u64 = 25_000;
/// Default Engine.IO ping timeout (Node's default).
pub const DEFAULT_PING_TIMEOUT_MS: u64 = 20_000;
/// Default time a client has to send a Socket.IO CONNECT (Node's default).
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 45_000;
/// Default largest HTTP body / WebSocket message in bytes (Node's `maxHttpBufferSize`).
pub const DEFAULT_MAX_PAYLOAD: usize = 1_000_000;
/// Default cluster request timeout (the Node adapter's `requestsTimeout`).
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 5_000;
/// Default mailbox of a socket actor: a burst of broadcasts to one connection.
pub const DEFAULT_SOCKET_MAILBOX: usize = 256;
/// Default mailbox of a room actor: every socket of a namespace may talk to it at once.
pub const DEFAULT_ROOM_MAILBOX: usize = 65_536;
/// Default mailbox of the Redis bridge: all local broadcasts of the node pass through it.
pub const DEFAULT_BRIDGE_MAILBOX: usize = 65_536;
/// Default outbound packets queued per connection before the slow-consumer policy applies.
pub const DEFAULT_SOCKET_BUFFER: usize = 1024;

/// JavaScript timers overflow past this many milliseconds (a `setTimeout` longer than 2^31-1 ms
/// fires at once), and the clients arm `pingInterval + pingTimeout`, so no duration may be longer.
pub const MAX_DURATION_MS: u64 = i32::MAX as u64;
/// Longest node id: it is part of log lines and of the room mirror's messages.
pub const MAX_NODE_ID_LEN: usize = 64;

/// One accepted namespace from `FERRIO_NAMESPACES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespacePattern {
    /// The namespace with exactly this name (`/admin`).
    Exact(String),
    /// Every namespace whose name starts with this prefix (`/org-*` is `Prefix("/org-")`).
    Prefix(String),
}

impl NamespacePattern {
    /// Whether the namespace `ns` (as sent in a CONNECT, with its leading `/`) is accepted by
    /// this pattern.
    pub fn matches(&self, ns: &str) -> bool {
        match self {
            NamespacePattern::Exact(name) => ns == name,
            NamespacePattern::Prefix(prefix) => ns.starts_with(prefix.as_str()),
        }
    }

    /// # Format
    /// `/name` (exact) or `/prefix*` (prefix). The name starts with `/`, has no whitespace, no
    /// `,` (it ends the namespace in a Socket.IO packet) and no `?` (the clients put a query
    /// there); `*` is allowed only as the last character.
    fn parse(entry: &str) -> Result<NamespacePattern, String> {
        if entry.is_empty() {
            return Err("empty entry in the comma list".to_string());
        }
        if !entry.starts_with('/') {
            return Err(format!("namespace must start with '/', got {entry:?}"));
        }
        if let Some(bad) = entry
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || *c == '?' || *c == ',')
        {
            return Err(format!("namespace {entry:?} contains {bad:?}"));
        }
        match entry.find('*') {
            None => Ok(NamespacePattern::Exact(entry.to_string())),
            Some(at) if at == entry.len() - 1 => {
                Ok(NamespacePattern::Prefix(entry[..at].to_string()))
            }
            Some(_) => Err(format!(
                "'*' is only allowed at the end of a namespace pattern, got {entry:?}"
            )),
        }
    }
}

impl fmt::Display for NamespacePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NamespacePattern::Exact(name) => f.write_str(name),
            NamespacePattern::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

/// The origins `FERRIO_CORS_ORIGINS` lets browsers connect from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// `*`: every origin.
    Any,
    /// These origins, each `scheme://host[:port]`, compared without regard to ASCII case.
    List(Vec<String>),
}

impl CorsOrigins {
    /// Whether a request carrying `Origin: origin` may be answered with CORS headers.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            CorsOrigins::Any => true,
            CorsOrigins::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        }
    }

    /// # Format
    /// `*`, or a comma list of origins as browsers send them: `scheme://host[:port]`, no path,
    /// no trailing slash (`https://app.example.com,http://localhost:8080`).
    fn parse(value: &str) -> Result<CorsOrigins, String> {
        if value.trim() == "*" {
            return Ok(CorsOrigins::Any);
        }
        let mut list = Vec::new();
        for entry in value.split(',').map(str::trim) {
            if entry.is_empty() {
                return Err("empty entry in the comma list".to_string());
            }
            if entry == "*" {
                return Err("'*' must be the whole value, not one entry of a list".to_string());
            }
            check_origin(entry)?;
            list.push(entry.to_string());
        }
        Ok(CorsOrigins::List(list))
    }
}

/// Checks that `origin` looks like `scheme://host[:port]`.
fn check_origin(origin: &str) -> Result<(), String> {
    let bad = || format!("expected an origin like https://example.com[:port], got {origin:?}");
    let (scheme, rest) = origin.split_once("://").ok_or_else(bad)?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok || rest.is_empty() {
        return Err(bad());
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        // [::1]:8080
        let (addr, after) = v6.split_once(']').ok_or_else(bad)?;
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad());
        }
        match after {
            "" => (addr, None),
            p => (addr, Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    let host_ok = !host.is_empty()
        && (host.contains(':')
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')));
    if !host_ok {
        return Err(bad());
    }
    if let Some(port) = port {
        if port.parse::<u16>().is_err() || port.starts_with('+') {
            return Err(bad());
        }
    }
    Ok(())
}

/// The whole runtime configuration of a node, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (`FERRIO_HOST`); an IP address or a host name.
    pub host: String,
    /// Port to listen on (`FERRIO_PORT`); 0 asks the OS for a free one (tests).
    pub port: u16,
    /// Engine.IO path (`FERRIO_PATH`), normalized with a leading and a trailing slash
    /// (`/socket.io/`), so routing compares it without further work.
    pub path: String,
    /// Namespaces a client may CONNECT to (`FERRIO_NAMESPACES`); any other gets
    /// `Invalid namespace`.
    pub namespaces: Vec<NamespacePattern>,
    /// Redis server of the cluster (`FERRIO_REDIS_URL`); `None` runs a standalone node.
    pub redis_url: Option<String>,
    /// Channel prefix on Redis (`FERRIO_REDIS_PREFIX`); must equal the Node adapters' `key`
    /// for a mixed cluster.
    pub redis_prefix: String,
    /// This node's name in logs, metrics and the room mirror (`FERRIO_NODE_ID`).
    pub node_id: String,
    /// How often the server pings each Engine.IO session (`FERRIO_PING_INTERVAL_MS`).
    pub ping_interval: Duration,
    /// How long a client has to answer a ping (`FERRIO_PING_TIMEOUT_MS`).
    pub ping_timeout: Duration,
    /// How long a new session has to send a Socket.IO CONNECT (`FERRIO_CONNECT_TIMEOUT_MS`).
    pub connect_timeout: Duration,
    /// Largest HTTP body or WebSocket message accepted, in bytes (`FERRIO_MAX_PAYLOAD`); it
    /// bounds what one client can make the server buffer.
    pub max_payload: usize,
    /// How long a cluster request (fetch sockets, all rooms, broadcast acks) waits for other
    /// nodes (`FERRIO_REQUEST_TIMEOUT_MS`).
    pub request_timeout: Duration,
    /// Origins that browsers may connect from (`FERRIO_CORS_ORIGINS`); `None` sends no CORS
    /// headers at all, so cross-origin polling is refused by browsers.
    pub cors_origins: Option<CorsOrigins>,
    /// Mailbox capacity of each socket actor (`FERRIO_SOCKET_MAILBOX`).
    pub socket_mailbox: usize,
    /// Mailbox capacity of each room actor (`FERRIO_ROOM_MAILBOX`).
    pub room_mailbox: usize,
    /// Mailbox capacity of the Redis-bridge actor (`FERRIO_BRIDGE_MAILBOX`).
    pub bridge_mailbox: usize,
    /// Outbound packets queued per connection before the slow-consumer policy applies
    /// (`FERRIO_SOCKET_BUFFER`): it bounds the memory a client that does not read can hold.
    pub socket_buffer: usize,
    /// HTTP worker threads (`FERRIO_WORKERS`).
    pub workers: usize,
}

/// A bad configuration value: which variable, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The environment variable at fault (or the later of two that conflict).
    pub variable: &'static str,
    /// What was expected and what was found, without the variable's name.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Default for Config {
    /// Every variable at its default, with a fresh random node id.
    fn default() -> Config {
        Config {
            host: DEFAULT_HOST.to_string(),
            port: DEFAULT_PORT,
            path: DEFAULT_PATH.to_string(),
            namespaces: vec![NamespacePattern::Exact("/".to_string())],
            redis_url: None,
            redis_prefix: DEFAULT_REDIS_PREFIX.to_string(),
            node_id: random_node_id(),
            ping_interval: Duration::from_millis(DEFAULT_PING_INTERVAL_MS),
            ping_timeout: Duration::from_millis(DEFAULT_PING_TIMEOUT_MS),
            connect_timeout: Duration::from_millis(DEFAULT_CONNECT_TIMEOUT_MS),
            max_payload: DEFAULT_MAX_PAYLOAD,
            request_timeout: Duration::from_millis(DEFAULT_REQUEST_TIMEOUT_MS),
            cors_origins: None,
            socket_mailbox: DEFAULT_SOCKET_MAILBOX,
            room_mailbox: DEFAULT_ROOM_MAILBOX,
            bridge_mailbox: DEFAULT_BRIDGE_MAILBOX,
            socket_buffer: DEFAULT_SOCKET_BUFFER,
            workers: default_workers(),
        }
    }
}

impl Config {
    /// Reads every variable of [`VARIABLES`] from the process environment.
    ///
    /// A value that is not valid UTF-8 is an error too.
    pub fn from_env() -> Result<Config, ConfigError> {
        for &variable in VARIABLES {
            if let Err(std::env::VarError::NotUnicode(raw)) = std::env::var(variable) {
                return Err(ConfigError {
                    variable,
                    message: format!("not valid UTF-8, got {raw:?}"),
                });
            }
        }
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from `get`, which returns a variable's value or `None` when it
    /// is unset. Unset variables take their defaults; everything else is validated.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let env = Lookup(&get);
        let d = Config::default();
        let ping_interval = env.millis("FERRIO_PING_INTERVAL_MS", DEFAULT_PING_INTERVAL_MS)?;
        let ping_timeout = env.millis("FERRIO_PING_TIMEOUT_MS", DEFAULT_PING_TIMEOUT_MS)?;
        if (ping_interval + ping_timeout).as_millis() > u128::from(MAX_DURATION_MS) {
            return Err(ConfigError {
                variable: "FERRIO_PING_TIMEOUT_MS",
                message: format!(
                    "FERRIO_PING_INTERVAL_MS + FERRIO_PING_TIMEOUT_MS must be at most \
                     {MAX_DURATION_MS} ms (clients arm a timer of their sum), got {} ms",
                    (ping_interval + ping_timeout).as_millis()
                ),
            });
        }
        Ok(Config {
            host: env.parse("FERRIO_HOST", d.host, parse_host)?,
            port: env.parse("FERRIO_PORT", d.port, |v| {
                v.parse::<u16>()
                    .ok()
                    .filter(|_| v.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| format!("expected a port number 0-65535, got {v:?}"))
            })?,
            path: env.parse("FERRIO_PATH", d.path, parse_path)?,
            namespaces: env.parse("FERRIO_NAMESPACES", d.namespaces, parse_namespaces)?,
            redis_url: env.parse("FERRIO_REDIS_URL", None, |v| parse_redis_url(v).map(Some))?,
            redis_prefix: env.parse("FERRIO_REDIS_PREFIX", d.redis_prefix, parse_redis_prefix)?,
            node_id: env.parse("FERRIO_NODE_ID", d.node_id, parse_node_id)?,
            ping_interval,
            ping_timeout,
            connect_timeout: env.millis("FERRIO_CONNECT_TIMEOUT_MS", DEFAULT_CONNECT_TIMEOUT_MS)?,
            max_payload: env.count("FERRIO_MAX_PAYLOAD", d.max_payload, "a size in bytes")?,
            request_timeout: env.millis("FERRIO_REQUEST_TIMEOUT_MS", DEFAULT_REQUEST_TIMEOUT_MS)?,
            cors_origins: env.parse("FERRIO_CORS_ORIGINS", None, |v| {
                CorsOrigins::parse(v).map(Some)
            })?,
            socket_mailbox: env.count("FERRIO_SOCKET_MAILBOX", d.socket_mailbox, "a capacity")?,
            room_mailbox: env.count("FERRIO_ROOM_MAILBOX", d.room_mailbox, "a capacity")?,
            bridge_mailbox: env.count("FERRIO_BRIDGE_MAILBOX", d.bridge_mailbox, "a capacity")?,
            socket_buffer: env.count("FERRIO_SOCKET_BUFFER", d.socket_buffer, "a packet count")?,
            workers: env.count("FERRIO_WORKERS", d.workers, "a thread count")?,
        })
    }

    /// Whether a client may CONNECT to the namespace `ns`.
    pub fn namespace_allowed(&self, ns: &str) -> bool {
        self.namespaces.iter().any(|p| p.matches(ns))
    }
}

/// The lookup function, with the parsing helpers that turn its answers into typed values.
struct Lookup<'a, F: Fn(&str) -> Option<String>>(&'a F);

impl<F: Fn(&str) -> Option<String>> Lookup<'_, F> {
    /// `default` when `variable` is unset, else `parse(value)`; an empty value is an error.
    fn parse<T>(
        &self,
        variable: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let Some(value) = (self.0)(variable) else {
            return Ok(default);
        };
        if value.trim().is_empty() {
            return Err(ConfigError {
                variable,
                message: format!("empty value {value:?}; unset the variable to use its default"),
            });
        }
        parse(&value).map_err(|message| ConfigError { variable, message })
    }

    /// A positive whole number; `what` names its unit in the error.
    fn count(
        &self,
        variable: &'static str,
        default: usize,
        what: &str,
    ) -> Result<usize, ConfigError> {
        let max = u64::try_from(usize::MAX).unwrap_or(u64::MAX);
        self.parse(variable, default, |v| {
            let n = parse_positive(v, what, max)?;
            usize::try_from(n).map_err(|_| format!("{n} does not fit this machine's usize"))
        })
    }

    /// A positive number of milliseconds, at most [`MAX_DURATION_MS`].
    fn millis(&self, variable: &'static str, default_ms: u64) -> Result<Duration, ConfigError> {
        self.parse(variable, default_ms, |v| {
            parse_positive(v, "a duration in milliseconds", MAX_DURATION_MS)
        })
        .map(Duration::from_millis)
    }
}

/// A whole number in `1..=max`, digits only (no sign, no spaces, no unit).
fn parse_positive(value: &str, what: &str, max: u64) -> Result<u64, String> {
    let expected = || format!("expected {what}, a whole number from 1 to {max}, got {value:?}");
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(expected());
    }
    match value.parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(expected()),
    }
}

/// An IP address (`127.0.0.1`, `::`) or a host name (`localhost`).
fn parse_host(value: &str) -> Result<String, String> {
    let is_hostname = value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if value.parse::<IpAddr>().is_ok() || is_hostname {
        Ok(value.to_string())
    } else {
        Err(format!(
            "expected an IP address or a host name (0.0.0.0, 127.0.0.1, ::, localhost), got {value:?}"
        ))
    }
}

/// `/socket.io` or `/socket.io/`, stored as `/socket.io/`.
fn parse_path(value: &str) -> Result<String, String> {
    if !value.starts_with('/') {
        return Err(format!("expected a path starting with '/', got {value:?}"));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '%'))
    {
        return Err(format!("path {value:?} contains {bad:?}"));
    }
    if value.contains("//") {
        return Err(format!("path {value:?} contains an empty segment"));
    }
    if value.ends_with('/') {
        Ok(value.to_string())
    } else {
        Ok(format!("{value}/"))
    }
}

/// A comma list of [`NamespacePattern`]s; spaces around entries are allowed.
fn parse_namespaces(value: &str) -> Result<Vec<NamespacePattern>, String> {
    value
        .split(',')
        .map(|entry| NamespacePattern::parse(entry.trim()))
        .collect()
}

/// `redis://…`, `rediss://…` (TLS) or `unix://…` (a socket path), with something after the
/// scheme.
fn parse_redis_url(value: &str) -> Result<String, String> {
    let bad =
        || format!("expected a URL starting with redis://, rediss:// or unix://, got {value:?}");
    let (scheme, rest) = value.split_once("://").ok_or_else(bad)?;
    if !matches!(scheme, "redis" | "rediss" | "unix") {
        return Err(bad());
    }
    if rest.is_empty() {
        return Err(format!("URL {value:?} names no server"));
    }
    if let Some(bad_char) = value.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("URL {value:?} contains {bad_char:?}"));
    }
    Ok(value.to_string())
}

/// Any text without whitespace or control characters (it is part of channel names).
fn parse_redis_prefix(value: &str) -> Result<String, String> {
    match value.chars().find(|c| c.is_whitespace() || c.is_control()) {
        Some(bad) => Err(format!("prefix {value:?} contains {bad:?}")),
        None => Ok(value.to_string()),
    }
}

/// 1 to [`MAX_NODE_ID_LEN`] characters of `A-Z a-z 0-9 - _ . :`.
fn parse_node_id(value: &str) -> Result<String, String> {
    let ok = value.len() <= MAX_NODE_ID_LEN
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(value.to_string())
    } else {
        Err(format!(
            "expected 1-{MAX_NODE_ID_LEN} characters of letters, digits, '-', '_', '.', ':', got {value:?}"
        ))
    }
}

/// 12 base64url characters (72 random bits): unique enough to tell nodes apart, short in logs.
fn random_node_id() -> String {
    let bytes: [u8; 9] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The number of cores this process may use, or 1 when the OS does not say.
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Builds a configuration from `vars` alone.
    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    /// The configuration with one variable set, which must be accepted.
    fn good(variable: &str, value: &str) -> Config {
        match config(&[(variable, value)]) {
            Ok(c) => c,
            Err(e) => panic!("{variable}={value:?} should be accepted, got error: {e}"),
        }
    }

    /// The error for one variable set to a bad value; it must name that variable.
    fn bad(variable: &str, value: &str) -> ConfigError {
        match config(&[(variable, value)]) {
            Ok(c) => panic!("{variable}={value:?} should be refused, got {c:?}"),
            Err(e) => {
                assert_eq!(e.variable, variable, "error names the wrong variable: {e}");
                assert!(e.to_string().starts_with(&format!("{variable}: ")));
                assert!(!e.to_string().contains('\n'), "error is not one line: {e}");
                e
            }
        }
    }

    #[test]
    fn defaults_match_the_design_table() {
        let c = config(&[]).expect("defaults");
        assert_eq!(c.host, "0.0.0.0");
        assert_eq!(c.port, 3000);
        assert_eq!(c.path, "/socket.io/");
        assert_eq!(c.namespaces, vec![NamespacePattern::Exact("/".into())]);
        assert_eq!(c.redis_url, None);
        assert_eq!(c.redis_prefix, "socket.io");
        assert_eq!(c.ping_interval, Duration::from_millis(25_000));
        assert_eq!(c.ping_timeout, Duration::from_millis(20_000));
        assert_eq!(c.connect_timeout, Duration::from_millis(45_000));
        assert_eq!(c.max_payload, 1_000_000);
        assert_eq!(c.request_timeout, Duration::from_millis(5_000));
        assert_eq!(c.cors_origins, None);
        assert_eq!(c.socket_mailbox, 256);
        assert_eq!(c.room_mailbox, 65_536);
        assert_eq!(c.bridge_mailbox, 65_536);
        assert_eq!(c.socket_buffer, 1024);
        assert!(c.workers >= 1);
        assert_eq!(c.workers, default_workers());
        assert!(c.namespace_allowed("/"));
        assert!(!c.namespace_allowed("/admin"));
    }

    #[test]
    fn default_impl_equals_empty_environment() {
        let d = Config::default();
        let c = config(&[]).expect("defaults");
        assert_eq!(
            format!(
                "{:?}",
                Config {
                    node_id: String::new(),
                    ..d
                }
            ),
            format!(
                "{:?}",
                Config {
                    node_id: String::new(),
                    ..c
                }
            )
        );
    }

    #[test]
    fn random_node_ids_are_12_base64url_chars_and_differ() {
        let a = config(&[]).expect("defaults").node_id;
        let b = config(&[]).expect("defaults").node_id;
        assert_eq!(a.len(), 12);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(a, b);
        assert!(parse_node_id(&a).is_ok());
    }

    #[test]
    fn unset_variables_are_not_confused_with_others() {
        // only the variable set changes; the lookup is asked by exact name
        let c = good("FERRIO_PORT", "4000");
        assert_eq!(c.port, 4000);
        assert_eq!(c.host, DEFAULT_HOST);
    }

    #[test]
    fn empty_values_are_refused_for_every_variable() {
        for &variable in VARIABLES {
            let e = bad(variable, "");
            assert!(e.message.contains("empty"), "{e}");
            bad(variable, "   ");
        }
    }

    #[test]
    fn host_accepts_addresses_and_names() {
        assert_eq!(good("FERRIO_HOST", "127.0.0.1").host, "127.0.0.1");
        assert_eq!(good("FERRIO_HOST", "::").host, "::");
        assert_eq!(good("FERRIO_HOST", "::1").host, "::1");
        assert_eq!(good("FERRIO_HOST", "localhost").host, "localhost");
        assert_eq!(
            good("FERRIO_HOST", "node-1.internal").host,
            "node-1.internal"
        );
    }

    #[test]
    fn host_refuses_urls_ports_and_junk() {
        bad("FERRIO_HOST", "http://localhost");
        bad("FERRIO_HOST", "127.0.0.1:3000");
        bad("FERRIO_HOST", "local host");
        bad("FERRIO_HOST", "-bad");
        bad("FERRIO_HOST", "a..b");
    }

    #[test]
    fn port_accepts_0_to_65535() {
        assert_eq!(good("FERRIO_PORT", "0").port, 0);
        assert_eq!(good("FERRIO_PORT", "8080").port, 8080);
        assert_eq!(good("FERRIO_PORT", "65535").port, 65535);
    }

    #[test]
    fn port_refuses_non_numbers_and_out_of_range() {
        let e = bad("FERRIO_PORT", "abc");
        assert_eq!(
            e.to_string(),
            r#"FERRIO_PORT: expected a port number 0-65535, got "abc""#
        );
        bad("FERRIO_PORT", "65536");
        bad("FERRIO_PORT", "-1");
        bad("FERRIO_PORT", "+80");
        bad("FERRIO_PORT", " 80");
        bad("FERRIO_PORT", "80.0");
    }

    #[test]
    fn path_is_normalized_with_trailing_slash() {
        assert_eq!(good("FERRIO_PATH", "/socket.io").path, "/socket.io/");
        assert_eq!(good("FERRIO_PATH", "/socket.io/").path, "/socket.io/");
        assert_eq!(good("FERRIO_PATH", "/rt/io").path, "/rt/io/");
        assert_eq!(good("FERRIO_PATH", "/").path, "/");
    }

    #[test]
    fn path_refuses_relative_and_odd_paths() {
        let e = bad("FERRIO_PATH", "socket.io");
        assert!(e.message.contains("'/'"), "{e}");
        bad("FERRIO_PATH", "/socket.io?x=1");
        bad("FERRIO_PATH", "/a b");
        bad("FERRIO_PATH", "//x");
        bad("FERRIO_PATH", "/a#b");
    }

    #[test]
    fn namespaces_parse_exact_and_prefix_patterns() {
        let c = good("FERRIO_NAMESPACES", "/,/admin,/org-*");
        assert_eq!(
            c.namespaces,
            vec![
                NamespacePattern::Exact("/".into()),
                NamespacePattern::Exact("/admin".into()),
                NamespacePattern::Prefix("/org-".into()),
            ]
        );
        assert!(c.namespace_allowed("/"));
        assert!(c.namespace_allowed("/admin"));
        assert!(c.namespace_allowed("/org-42"));
        assert!(c.namespace_allowed("/org-"));
        assert!(!c.namespace_allowed("/admin2"));
        assert!(!c.namespace_allowed("/org"));
        assert!(!c.namespace_allowed("/other"));
        let spaced = good("FERRIO_NAMESPACES", " /a , /b ");
        assert!(spaced.namespace_allowed("/a") && spaced.namespace_allowed("/b"));
        let only_admin = good("FERRIO_NAMESPACES", "/admin");
        assert!(!only_admin.namespace_allowed("/"));
        let all = good("FERRIO_NAMESPACES", "/*");
        assert!(all.namespace_allowed("/") && all.namespace_allowed("/anything"));
    }

    #[test]
    fn namespace_patterns_display_as_written() {
        let c = good("FERRIO_NAMESPACES", "/admin,/org-*");
        let shown: Vec<String> = c.namespaces.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["/admin", "/org-*"]);
    }

    #[test]
    fn namespaces_refuse_bad_entries() {
        let e = bad("FERRIO_NAMESPACES", "admin");
        assert!(e.message.contains("'/'"), "{e}");
        let e = bad("FERRIO_NAMESPACES", "/,,/admin");
        assert!(e.message.contains("empty"), "{e}");
        bad("FERRIO_NAMESPACES", "/admin,");
        bad("FERRIO_NAMESPACES", "/a*b");
        bad("FERRIO_NAMESPACES", "/a b");
        bad("FERRIO_NAMESPACES", "/a?b");
        bad("FERRIO_NAMESPACES", "*");
    }

    #[test]
    fn redis_url_accepts_the_three_schemes() {
        assert_eq!(
            good("FERRIO_REDIS_URL", "redis://127.0.0.1:6379")
                .redis_url
                .as_deref(),
            Some("redis://127.0.0.1:6379")
        );
        assert!(good("FERRIO_REDIS_URL", "rediss://cache.example:6380/0")
            .redis_url
            .is_some());
        assert!(good("FERRIO_REDIS_URL", "unix:///run/redis.sock")
            .redis_url
            .is_some());
        assert!(good("FERRIO_REDIS_URL", "redis://:secret@h:1/2")
            .redis_url
            .is_some());
    }

    #[test]
    fn redis_url_refuses_other_schemes_and_junk() {
        let e = bad("FERRIO_REDIS_URL", "http://127.0.0.1:6379");
        assert!(e.message.contains("redis://"), "{e}");
        bad("FERRIO_REDIS_URL", "127.0.0.1:6379");
        bad("FERRIO_REDIS_URL", "redis://");
        bad("FERRIO_REDIS_URL", "REDIS://h");
        bad("FERRIO_REDIS_URL", "redis://h x");
    }

    #[test]
    fn redis_prefix_accepts_names_and_refuses_spaces() {
        assert_eq!(good("FERRIO_REDIS_PREFIX", "app#1").redis_prefix, "app#1");
        bad("FERRIO_REDIS_PREFIX", "my prefix");
        bad("FERRIO_REDIS_PREFIX", "a\tb");
    }

    #[test]
    fn node_id_accepts_names_and_refuses_junk() {
        assert_eq!(good("FERRIO_NODE_ID", "node-1").node_id, "node-1");
        assert_eq!(good("FERRIO_NODE_ID", "eu.west:2_a").node_id, "eu.west:2_a");
        bad("FERRIO_NODE_ID", "node 1");
        bad("FERRIO_NODE_ID", "nœud");
        bad("FERRIO_NODE_ID", &"x".repeat(MAX_NODE_ID_LEN + 1));
    }

    #[test]
    fn durations_accept_positive_milliseconds() {
        let c = config(&[
            ("FERRIO_PING_INTERVAL_MS", "300"),
            ("FERRIO_PING_TIMEOUT_MS", "200"),
            ("FERRIO_CONNECT_TIMEOUT_MS", "1000"),
            ("FERRIO_REQUEST_TIMEOUT_MS", "1"),
        ])
        .expect("valid durations");
        assert_eq!(c.ping_interval, Duration::from_millis(300));
        assert_eq!(c.ping_timeout, Duration::from_millis(200));
        assert_eq!(c.connect_timeout, Duration::from_millis(1000));
        assert_eq!(c.request_timeout, Duration::from_millis(1));
    }

    #[test]
    fn durations_refuse_zero_negative_units_and_overflow() {
        for variable in [
            "FERRIO_PING_INTERVAL_MS",
            "FERRIO_PING_TIMEOUT_MS",
            "FERRIO_CONNECT_TIMEOUT_MS",
            "FERRIO_REQUEST_TIMEOUT_MS",
        ] {
            let e = bad(variable, "0");
            assert!(e.message.contains("milliseconds"), "{e}");
            bad(variable, "-5");
            bad(variable, "5s");
            bad(variable, "1.5");
            bad(variable, "abc");
            bad(variable, "99999999999999999999999");
            bad(variable, &(MAX_DURATION_MS + 1).to_string());
        }
    }

    #[test]
    fn ping_interval_plus_timeout_must_fit_a_javascript_timer() {
        let half = (MAX_DURATION_MS / 2).to_string();
        config(&[
            ("FERRIO_PING_INTERVAL_MS", &half),
            ("FERRIO_PING_TIMEOUT_MS", &half),
        ])
        .expect("sum at the limit");
        let e = config(&[
            ("FERRIO_PING_INTERVAL_MS", &MAX_DURATION_MS.to_string()),
            ("FERRIO_PING_TIMEOUT_MS", "1"),
        ])
        .expect_err("sum over the limit");
        assert_eq!(e.variable, "FERRIO_PING_TIMEOUT_MS");
    }

    #[test]
    fn max_payload_accepts_positive_sizes() {
        assert_eq!(good("FERRIO_MAX_PAYLOAD", "1").max_payload, 1);
        assert_eq!(
            good("FERRIO_MAX_PAYLOAD", "100000000").max_payload,
            100_000_000
        );
    }

    #[test]
    fn max_payload_refuses_zero_and_units() {
        bad("FERRIO_MAX_PAYLOAD", "0");
        bad("FERRIO_MAX_PAYLOAD", "1MB");
        bad("FERRIO_MAX_PAYLOAD", "1e6");
        bad("FERRIO_MAX_PAYLOAD", "1_000_000");
    }

    #[test]
    fn cors_accepts_any_and_lists_of_origins() {
        let any = good("FERRIO_CORS_ORIGINS", "*").cors_origins;
        assert_eq!(any, Some(CorsOrigins::Any));
        assert!(any
            .as_ref()
            .is_some_and(|c| c.allows("https://whatever.example")));

        let list = good(
            "FERRIO_CORS_ORIGINS",
            "http://127.0.0.1:8080, https://app.example.com,http://[::1]:9000",
        )
        .cors_origins
        .expect("a list");
        assert_eq!(
            list,
            CorsOrigins::List(vec![
                "http://127.0.0.1:8080".into(),
                "https://app.example.com".into(),
                "http://[::1]:9000".into(),
            ])
        );
        assert!(list.allows("http://127.0.0.1:8080"));
        assert!(list.allows("https://APP.example.com"));
        assert!(list.allows("http://[::1]:9000"));
        assert!(!list.allows("http://127.0.0.1:8081"));
        assert!(!list.allows("https://127.0.0.1:8080"));
        assert!(!list.allows("https://app.example.com.evil.example"));
        assert!(!list.allows("null"));
    }

    #[test]
    fn cors_refuses_things_that_are_not_origins() {
        let e = bad("FERRIO_CORS_ORIGINS", "example.com");
        assert!(e.message.contains("origin"), "{e}");
        bad("FERRIO_CORS_ORIGINS", "https://example.com/");
        bad("FERRIO_CORS_ORIGINS", "https://example.com/app");
        bad("FERRIO_CORS_ORIGINS", "https://example.com:99999");
        bad("FERRIO_CORS_ORIGINS", "https://");
        bad("FERRIO_CORS_ORIGINS", "https://a,,https://b");
        bad("FERRIO_CORS_ORIGINS", "https://a,*");
        bad("FERRIO_CORS_ORIGINS", "://a");
        bad("FERRIO_CORS_ORIGINS", "http://[zz]:80");
    }

    #[test]
    fn mailboxes_buffer_and_workers_accept_positive_counts() {
        let c = config(&[
            ("FERRIO_SOCKET_MAILBOX", "16"),
            ("FERRIO_ROOM_MAILBOX", "1024"),
            ("FERRIO_BRIDGE_MAILBOX", "2048"),
            ("FERRIO_SOCKET_BUFFER", "64"),
            ("FERRIO_WORKERS", "3"),
        ])
        .expect("valid counts");
        assert_eq!(c.socket_mailbox, 16);
        assert_eq!(c.room_mailbox, 1024);
        assert_eq!(c.bridge_mailbox, 2048);
        assert_eq!(c.socket_buffer, 64);
        assert_eq!(c.workers, 3);
    }

    #[test]
    fn mailboxes_buffer_and_workers_refuse_zero_and_junk() {
        for variable in [
            "FERRIO_SOCKET_MAILBOX",
            "FERRIO_ROOM_MAILBOX",
            "FERRIO_BRIDGE_MAILBOX",
            "FERRIO_SOCKET_BUFFER",
            "FERRIO_WORKERS",
        ] {
            bad(variable, "0");
            bad(variable, "-1");
            bad(variable, "many");
            bad(variable, "4 ");
        }
    }

    #[test]
    fn first_bad_variable_is_reported_even_with_others_set() {
        let e = config(&[
            ("FERRIO_HOST", "127.0.0.1"),
            ("FERRIO_PORT", "4000"),
            ("FERRIO_WORKERS", "zero"),
        ])
        .expect_err("bad workers");
        assert_eq!(e.variable, "FERRIO_WORKERS");
    }

    #[test]
    fn from_env_reads_the_process_environment() {
        // The variable names are read from the real environment; with none of ours set (as in
        // `cargo test`), this is the defaults. Only checks that nothing is misread.
        if VARIABLES.iter().all(|v| std::env::var_os(v).is_none()) {
            let c = Config::from_env().expect("defaults from the environment");
            assert_eq!(c.port, DEFAULT_PORT);
        }
    }
}
