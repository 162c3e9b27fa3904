//! Where anshin may connect on others' say-so: a guard against server-side
//! request forgery (SSRF), shared by the page monitor and the webhooks.
//!
//! A monitored page's URL is operator input, and its redirects and the
//! scripts it names are the page's own choice (an attacker's, once the shop
//! is compromised); a shop's payment webhook URL is the shop's choice.
//! Unguarded, anshin could be sent to the cloud metadata service
//! (169.254.169.254, `fd00:ec2::254`), a database on loopback or an
//! intranet, and report what it found in an inventory or a delivery error.
//! By default only public unicast addresses are reachable; the policy names
//! CIDR blocks that are reachable too (`page_monitor_allow_networks` for the
//! page monitor: an intranet shop, the tests' loopback servers; loopback for
//! shops' webhooks where `payment_webhook_allow_loopback` is set).
//!
//! The check is on the address connected to, after resolution:
//! [`GuardedResolver`] hands the connector only the addresses that pass, and
//! the connector connects to those very addresses, so a name that resolves
//! to a public address when checked and a private one when connected (DNS
//! rebinding) cannot get through, nor can a redirect. Addresses written in
//! the URL, which the connector does not resolve, are checked by
//! [`NetworkPolicy::check_url`] / [`NetworkPolicy::check_host`] before each
//! request.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;
use url::{Host, Url};

use crate::access::cidr::Cidr;

/// Which addresses may be connected to.
#[derive(Debug, Clone, Default)]
pub struct NetworkPolicy {
    /// Blocks reachable besides public addresses.
    allow: Vec<Cidr>,
}

/// A connection the policy refused (its text names the address, never page content).
#[derive(Debug)]
pub struct Denied(pub String);

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Denied {}

impl NetworkPolicy {
    /// Public addresses and the `allow` blocks.
    pub fn new(allow: Vec<Cidr>) -> Self {
        Self { allow }
    }

    /// Every address: for the operator's own receivers, which may well be
    /// on an internal network (a SIEM).
    pub fn unrestricted() -> Self {
        let everything = ["0.0.0.0/0", "::/0"]
            .iter()
            .filter_map(|block| Cidr::parse(block));
        Self::new(everything.collect())
    }

    /// Public addresses, and loopback when `loopback` (tests, the demo).
    pub fn public_and_loopback(loopback: bool) -> Self {
        let blocks = ["127.0.0.0/8", "::1/128"]
            .iter()
            .filter_map(|block| Cidr::parse(block));
        Self::new(if loopback { blocks.collect() } else { Vec::new() })
    }

    /// Whether `ip` may be connected to.
    pub fn permits(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.allow.iter().any(|block| block.contains(ip))
    }

    fn refuse(host: &str, ip: IpAddr) -> Denied {
        Denied(format!(
            "{host} is at {ip}, a private, loopback, link-local or otherwise non-public address \
             the configuration does not allow"
        ))
    }

    /// Refuses a URL whose host is a non-permitted IP address (names are
    /// checked when they are resolved).
    pub fn check_url(&self, url: &Url) -> Result<(), Denied> {
        let ip = match url.host() {
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
            _ => return Ok(()),
        };
        self.check_ip(ip)
    }

    /// Refuses a URI host (`[v6]` bracketed or not) that is a non-permitted
    /// IP address, read as hyper's connector reads it: what it takes for an
    /// address it connects to without resolving; anything else goes through
    /// [`GuardedResolver`].
    pub fn check_host(&self, host: &str) -> Result<(), Denied> {
        match host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => self.check_ip(ip),
            Err(_) => Ok(()),
        }
    }

    fn check_ip(&self, ip: IpAddr) -> Result<(), Denied> {
        if self.permits(ip) {
            Ok(())
        } else {
            Err(Self::refuse(&ip.to_string(), ip))
        }
    }
}

/// Whether `ip` is a public unicast address: not unspecified, loopback,
/// private, shared (CGNAT), link-local, multicast, broadcast, documentation,
/// benchmarking or reserved; IPv6 forms that carry an IPv4 address (mapped,
/// NAT64, 6to4) are judged by that address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => public_v6(v6),
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b))
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && (c == 0 || c == 2))
        || (a == 192 && b == 88 && c == 99)
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19))
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || a >= 224)
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return public_v4(v4);
    }
    match s {
        // NAT64 (64:ff9b::/96): the IPv4 address in the last 32 bits.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => public_v4(embedded(hi, lo)),
        // 6to4 (2002::/16): the IPv4 address in bits 16..48.
        [0x2002, hi, lo, ..] => public_v4(embedded(hi, lo)),
        // Unspecified, loopback and IPv4-compatible (::/96).
        [0, 0, 0, 0, 0, 0, _, _] => false,
        // Teredo (2001::/32) hides its client's address; documentation (2001:db8::/32).
        [0x2001, 0, ..] | [0x2001, 0xdb8, ..] => false,
        // Unique local (fc00::/7), link-local and site-local (fe80::/9), multicast (ff00::/8).
        [first, ..] => {
            !((first & 0xfe00) == 0xfc00 || (first & 0xff80) == 0xfe80 || (first & 0xff00) == 0xff00)
        }
    }
}

/// The connector's resolver: the system's, keeping only the addresses the
/// policy permits (an error when none is left).
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<NetworkPolicy>,
}

impl GuardedResolver {
    /// A resolver under `policy`.
    pub fn new(policy: Arc<NetworkPolicy>) -> Self {
        Self { policy }
    }
}

impl tower::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (permitted, refused): (Vec<SocketAddr>, Vec<SocketAddr>) =
                found.into_iter().partition(|a| policy.permits(a.ip()));
            match (permitted.is_empty(), refused.first()) {
                (true, Some(first)) => Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    NetworkPolicy::refuse(&host, first.ip()),
                )),
                _ => Ok(permitted.into_iter()),
            }
        })
    }
}

/// The refusal in an error's chain, if a refusal caused it.
pub fn denial(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(denied) = e.downcast_ref::<Denied>() {
            return Some(denied.0.clone());
        }
        if let Some(denied) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<Denied>())
        {
            return Some(denied.0.clone());
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_unicast_addresses_pass_by_default() {
        let policy = NetworkPolicy::default();
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:c0a8:0101::1",
            "2001:db8::1",
            "2001::1",
            "::127.0.0.1",
        ] {
            let ip: IpAddr = private.parse().expect(private);
            assert!(!policy.permits(ip), "{private} passed");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "2002:0808:0808::1",
        ] {
            let ip: IpAddr = public.parse().expect(public);
            assert!(policy.permits(ip), "{public} refused");
        }
    }

    #[test]
    fn allowed_blocks_and_literal_urls() {
        let policy = NetworkPolicy::new(vec![Cidr::parse("10.20.0.0/16").expect("cidr")]);
        assert!(policy.permits("10.20.3.4".parse().expect("ip")));
        assert!(!policy.permits("10.21.3.4".parse().expect("ip")));
        let url = |u: &str| Url::parse(u).expect("url");
        assert!(policy.check_url(&url("http://10.20.1.1/checkout")).is_ok());
        assert!(policy.check_url(&url("https://shop.example/")).is_ok());
        // Every spelling of loopback the URL parser folds to one address.
        for bad in [
            "http://127.0.0.1/",
            "http://0x7f.1/",
            "http://2130706433/",
            "http://[::1]:8080/",
            "http://[::ffff:169.254.169.254]/",
        ] {
            assert!(policy.check_url(&url(bad)).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn names_resolving_only_to_refused_addresses_fail_with_the_reason() {
        let mut resolver = GuardedResolver::new(Arc::new(NetworkPolicy::default()));
        let name: Name = "localhost".parse().expect("name");
        let err = tower::Service::call(&mut resolver, name)
            .await
            .expect_err("refused");
        assert!(
            denial(&err).is_some_and(|d| d.contains("localhost is at")),
            "{err}"
        );
        let mut allowing = GuardedResolver::new(Arc::new(NetworkPolicy::new(vec![
            Cidr::parse("127.0.0.0/8").expect("cidr"),
        ])));
        let addrs: Vec<SocketAddr> = tower::Service::call(&mut allowing, "localhost".parse().expect("name"))
            .await
            .expect("allowed")
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }
}

/// A forward proxy on loopback that headless Chromium (browser mode) is made
/// to use for everything (`--proxy-server`, with loopback not exempt): it
/// resolves names itself and connects only where the policy permits, the
/// same check as the HTTP fetch's, DNS rebinding included. HTTPS and
/// WebSockets are tunnelled (`CONNECT`), plain HTTP forwarded; a refused
/// destination gets `403`. It stops when dropped.
#[derive(Debug)]
pub struct GuardProxy {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GuardProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type ProxyBody = http_body_util::combinators::BoxBody<bytes::Bytes, hyper::Error>;

impl GuardProxy {
    /// Starts the proxy on a free loopback port.
    pub async fn start(policy: Arc<NetworkPolicy>) -> std::io::Result<Self> {
        use hyper_util::client::legacy::Client;
        use hyper_util::client::legacy::connect::HttpConnector;
        use hyper_util::rt::{TokioExecutor, TokioIo};

        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let client: Client<HttpConnector<GuardedResolver>, hyper::body::Incoming> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new_with_resolver(
                GuardedResolver::new(policy.clone()),
            ));
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (policy, client) = (policy.clone(), client.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        proxy(request, policy.clone(), client.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Ok(Self { addr, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

fn status(code: hyper::StatusCode) -> hyper::Response<ProxyBody> {
    use http_body_util::BodyExt as _;
    let mut response = hyper::Response::new(
        http_body_util::Empty::<bytes::Bytes>::new()
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = code;
    response
}

/// Connects to `host:port` at an address the policy permits.
async fn connect(policy: &NetworkPolicy, host: &str, port: u16) -> Result<tokio::net::TcpStream, ()> {
    let literal = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>();
    let candidates: Vec<SocketAddr> = match literal {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| ())?
            .collect(),
    };
    for addr in candidates.into_iter().filter(|a| policy.permits(a.ip())) {
        if let Ok(stream) = tokio::net::TcpStream::connect(addr).await {
            return Ok(stream);
        }
    }
    Err(())
}

async fn proxy(
    mut request: hyper::Request<hyper::body::Incoming>,
    policy: Arc<NetworkPolicy>,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector<GuardedResolver>,
        hyper::body::Incoming,
    >,
) -> Result<hyper::Response<ProxyBody>, std::convert::Infallible> {
    use http_body_util::BodyExt as _;
    if request.method() == hyper::Method::CONNECT {
        let Some((host, port)) = request
            .uri()
            .authority()
            .map(|a| (a.host().to_owned(), a.port_u16().unwrap_or(443)))
        else {
            return Ok(status(hyper::StatusCode::BAD_REQUEST));
        };
        let Ok(mut upstream) = connect(&policy, &host, port).await else {
            return Ok(status(hyper::StatusCode::FORBIDDEN));
        };
        tokio::spawn(async move {
            if let Ok(upgraded) = hyper::upgrade::on(&mut request).await {
                let mut upgraded = hyper_util::rt::TokioIo::new(upgraded);
                let _ = tokio::io::copy_bidirectional(&mut upgraded, &mut upstream).await;
            }
        });
        return Ok(status(hyper::StatusCode::OK));
    }
    let url = Url::parse(&request.uri().to_string()).ok();
    let Some(url) = url.filter(|u| u.scheme() == "http") else {
        return Ok(status(hyper::StatusCode::BAD_REQUEST));
    };
    if policy.check_url(&url).is_err() {
        return Ok(status(hyper::StatusCode::FORBIDDEN));
    }
    for hop in [
        "proxy-connection",
        "proxy-authorization",
        "connection",
        "keep-alive",
    ] {
        request.headers_mut().remove(hop);
    }
    Ok(match client.request(request).await {
        Ok(response) => response.map(|body| body.boxed()),
        Err(err) if denial(&err).is_some() => status(hyper::StatusCode::FORBIDDEN),
        Err(_) => status(hyper::StatusCode::BAD_GATEWAY),
    })
}

#[cfg(test)]
mod proxy_tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A loopback server answering every request with `hello`.
    async fn upstream() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    let _ = stream.read(&mut buf).await;
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello")
                        .await;
                });
            }
        });
        addr
    }

    /// Sends `head` to the proxy and returns what comes back, up to the end.
    async fn through(proxy: &GuardProxy, head: String) -> String {
        let mut stream = tokio::net::TcpStream::connect(proxy.addr()).await.expect("proxy");
        stream.write_all(head.as_bytes()).await.expect("write");
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        // A tunnel stays open: read what arrives within a moment.
        while let Ok(Ok(n)) =
            tokio::time::timeout(std::time::Duration::from_millis(500), stream.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn the_browsers_proxy_refuses_what_the_policy_refuses() {
        let site = upstream().await;
        let strict = GuardProxy::start(Arc::default()).await.expect("proxy");
        let get = format!("GET http://{site}/x.js HTTP/1.1\r\nhost: {site}\r\n\r\n");
        assert!(through(&strict, get.clone()).await.starts_with("HTTP/1.1 403"));
        let connect = format!("CONNECT {site} HTTP/1.1\r\nhost: {site}\r\n\r\n");
        assert!(
            through(&strict, connect.clone())
                .await
                .starts_with("HTTP/1.1 403")
        );
        let by_name = format!(
            "GET http://localhost:{}/x.js HTTP/1.1\r\nhost: localhost\r\n\r\n",
            site.port()
        );
        assert!(through(&strict, by_name).await.starts_with("HTTP/1.1 403"));

        let loopback = Cidr::parse("127.0.0.0/8").expect("cidr");
        let open = GuardProxy::start(Arc::new(NetworkPolicy::new(vec![loopback])))
            .await
            .expect("proxy");
        let answer = through(&open, get).await;
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("hello"),
            "{answer}"
        );
        let tunnel = format!("{connect}GET /x.js HTTP/1.1\r\nhost: {site}\r\n\r\n");
        let answer = through(&open, tunnel).await;
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("hello"),
            "{answer}"
        );
    }
}
